"""Versioned job specs. A spec is JSON; every field is checked here so that a bad field
fails in milliseconds with a message naming it, before torch is even imported."""

import dataclasses
import importlib.util
import json
import os
from dataclasses import dataclass, field

VERSION = 1
BUILTINS = ("builtin:tiny-flux",)
OPTIMIZERS = ("adamw8bit", "adamw", "adafactor", "prodigy")
DTYPES = ("auto", "fp32", "bf16", "fp16")
QUANTIZE = ("auto", "none", "nf4", "int8", "fp8")


class SpecError(Exception):
    def __init__(self, problems):  # list of (field, message)
        self.problems = problems
        super().__init__("; ".join(f"spec.{f}: {m}" for f, m in problems))


@dataclass
class TrainSpec:
    version: int
    trigger_word: str
    base_model_path: str
    dataset_dir: str
    work_dir: str
    training_type: str = "LORA"
    rank: int = 16
    steps: int = 1000
    learning_rate: float = 1e-4
    batch_size: int = 1
    gradient_accumulation: int = 1
    optimizer: str = "adamw8bit"
    save_every: int = 2000
    max_step_saves_to_keep: int = 4
    sample_every: int = 250
    sample_steps: int = 25
    sample_prompts: list = field(default_factory=list)
    bypass_guidance_embedding: bool = False
    resolution: list = field(default_factory=lambda: [512])
    seed: int = 42
    device: str = "auto"
    dtype: str = "auto"
    gradient_checkpointing: object = True  # True (every block), False, or "auto": as few as fit
    # the frozen base's storage for LoRA; "auto" quantizes only what must fit, and never to fp8
    # (it multiplies in fp8 too: a speed option, chosen by hand until a GPU shows it wins)
    quantize: str = "auto"
    compile: bool = False  # torch.compile each transformer block
    flat_lora: bool = False  # LoRA weights and gradients as views of one buffer each: one optimizer update
    cache_latents: bool = True
    cache_text_embeddings: bool = True
    resume: bool = True
    init_lora: str = None  # a LoRA save_lora wrote, to continue from (a checkpoint to resume wins)
    guidance_scale: float = 1.0
    sample_guidance_scale: float = 3.5
    sample_width: int = None
    sample_height: int = None


@dataclass
class LoraRef:
    path: str
    scale: float = 1.0


@dataclass
class GenerateSpec:
    version: int
    base_model_path: str
    prompts: list
    output_dir: str
    loras: list = field(default_factory=list)
    width: int = None  # None -> tiny.SIZE for the tiny model, else 512
    height: int = None
    steps: int = None  # None -> tiny.SAMPLE_STEPS for the tiny model, else 28
    guidance_scale: float = 3.5
    seed: int = 42
    num_images: int = 1
    device: str = "auto"
    dtype: str = "auto"


@dataclass
class CaptionSpec:
    version: int
    model_path: str
    images: list
    prompt: str = ""
    max_new_tokens: int = 60
    device: str = "auto"


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(cls, raw, rules):
    """Type-check raw against the dataclass, then apply per-field rules
    (field -> (predicate, message)). Returns the instance or raises SpecError."""
    if not isinstance(raw, dict):
        raise SpecError([("", "spec must be a JSON object")])
    problems = []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in fields:
            problems.append((k, f"unknown field {k!r}"))
    if "version" in raw and raw["version"] != VERSION:
        problems.append(("version", f"must be {VERSION}, got {raw['version']!r}"))
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in raw:
            if required:
                problems.append((name, "is required"))
            continue
        v = raw[name]
        if name == "version":
            continue
        if name in rules:
            ok, msg = rules[name]
            try:
                good = ok(v)
            except Exception:
                good = False
            if not good:
                problems.append((name, f"{msg}, got {v!r}"))
    if problems:
        raise SpecError(problems)
    return cls(**raw)


def _model_ok(v):
    return isinstance(v, str) and v.strip() != "" and (not v.startswith("builtin:") or v in BUILTINS)


_str = (lambda v: isinstance(v, str) and v.strip() != "", "must be a non-empty string")
_bool = (lambda v: isinstance(v, bool), "must be true or false")
_pos_int = (lambda v: _is_int(v) and v >= 1, "must be an integer >= 1")
_opt_size = (lambda v: v is None or (_is_int(v) and v >= 16 and v % 16 == 0), "must be a multiple of 16, >= 16")
_model = (_model_ok, f"must be one of {list(BUILTINS)}, a local diffusers folder or a Hugging Face repo id")
_device = (
    lambda v: v in ("auto", "cpu", "cuda") or (isinstance(v, str) and v.startswith("cuda:")),
    "must be 'auto', 'cpu', 'cuda' or 'cuda:N'",
)
_dtype = (lambda v: v in DTYPES, f"must be one of {list(DTYPES)}")

TRAIN_RULES = {
    "training_type": (lambda v: v in ("LORA", "FULL"), "must be 'LORA' or 'FULL'"),
    "trigger_word": _str,
    "rank": (lambda v: _is_int(v) and 1 <= v <= 256, "must be an integer in 1..256"),
    "steps": _pos_int,
    "learning_rate": (lambda v: _is_num(v) and v > 0, "must be a number > 0"),
    "batch_size": _pos_int,
    "gradient_accumulation": _pos_int,
    # prodigy is optional: its absence is a bad field now, not after the model has loaded
    "optimizer": (
        lambda v: v in OPTIMIZERS and (v != "prodigy" or importlib.util.find_spec("prodigyopt") is not None),
        f"must be one of {list(OPTIMIZERS)} (prodigy only with the 'prodigyopt' package installed)",
    ),
    "save_every": _pos_int,
    "max_step_saves_to_keep": _pos_int,
    "sample_every": _pos_int,
    "sample_steps": _pos_int,
    "sample_prompts": (
        lambda v: isinstance(v, list) and all(isinstance(p, str) for p in v),
        "must be a list of strings",
    ),
    "base_model_path": _model,
    "bypass_guidance_embedding": _bool,
    "dataset_dir": (lambda v: isinstance(v, str) and os.path.isdir(v), "must be an existing folder"),
    "work_dir": _str,
    "resolution": (
        lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(r) and r >= 32 and r % 16 == 0 for r in v),
        "must be a non-empty list of multiples of 16, >= 32",
    ),
    "seed": (lambda v: _is_int(v) and 0 <= v < 2**32, "must be an integer in 0..2^32-1"),
    "device": _device,
    "dtype": (
        lambda v: v in DTYPES and v != "fp16",
        "must be 'auto', 'fp32' or 'bf16' (fp16 overflows FLUX activations and is not offered for training)",
    ),
    "gradient_checkpointing": (
        lambda v: isinstance(v, bool) or v == "auto",
        "must be true (every block), false or 'auto' (as few blocks as the memory plan needs)",
    ),
    "quantize": (lambda v: v in QUANTIZE, f"must be one of {list(QUANTIZE)}"),
    "compile": _bool,
    "flat_lora": _bool,
    "cache_latents": _bool,
    "cache_text_embeddings": _bool,
    "resume": _bool,
    "init_lora": (
        lambda v: v is None or (isinstance(v, str) and os.path.isfile(v)),
        "must be an existing .safetensors file",
    ),
    "guidance_scale": (lambda v: _is_num(v) and v >= 0, "must be a number >= 0"),
    "sample_guidance_scale": (lambda v: _is_num(v) and v >= 0, "must be a number >= 0"),
    "sample_width": _opt_size,
    "sample_height": _opt_size,
}

GENERATE_RULES = {
    "base_model_path": _model,
    "prompts": (
        lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(p, str) for p in v),
        "must be a non-empty list of strings",
    ),
    "output_dir": _str,
    "loras": (
        lambda v: (
            isinstance(v, list)
            and all(
                isinstance(lora, dict)
                and set(lora) <= {"path", "scale"}
                and isinstance(lora.get("path"), str)
                and os.path.isfile(lora["path"])
                and _is_num(lora.get("scale", 1.0))
                for lora in v
            )
        ),
        "must be a list of {path: existing .safetensors file, scale: number}",
    ),
    "width": _opt_size,
    "height": _opt_size,
    "steps": (lambda v: v is None or (_is_int(v) and v >= 1), "must be an integer >= 1"),
    "guidance_scale": (lambda v: _is_num(v) and v >= 0, "must be a number >= 0"),
    "seed": (lambda v: _is_int(v) and 0 <= v < 2**32, "must be an integer in 0..2^32-1"),
    "num_images": _pos_int,
    "device": _device,
    "dtype": _dtype,
}


CAPTION_RULES = {
    "model_path": (lambda v: isinstance(v, str) and os.path.isdir(v), "must be an existing local model folder"),
    "images": (
        lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(p, str) and os.path.isfile(p) for p in v),
        "must be a non-empty list of existing image files",
    ),
    "prompt": (lambda v: isinstance(v, str), "must be a string"),
    "max_new_tokens": (lambda v: _is_int(v) and 1 <= v <= 512, "must be an integer in 1..512"),
    "device": _device,
}


def load(path, kind):
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise SpecError([("", f"cannot read spec file {path}: {e}")]) from e
    if kind == "train":
        spec = _check(TrainSpec, raw, TRAIN_RULES)
        if spec.training_type == "FULL" and spec.quantize in ("nf4", "int8", "fp8"):
            raise SpecError([("quantize", f"{spec.quantize} stores a frozen base; FULL trains every weight: use LORA")])
        if spec.init_lora and spec.training_type != "LORA":
            raise SpecError([("init_lora", "continues a LoRA; FULL trains the model's own weights")])
        if spec.flat_lora and spec.training_type != "LORA":
            raise SpecError([("flat_lora", "flattens LoRA weights; FULL trains the model's own")])
        spec.sample_width = spec.sample_width or spec.resolution[0]
        spec.sample_height = spec.sample_height or spec.resolution[0]
        return spec
    if kind == "caption":
        return _check(CaptionSpec, raw, CAPTION_RULES)
    spec = _check(GenerateSpec, raw, GENERATE_RULES)
    spec.loras = [LoraRef(**lora) for lora in spec.loras]
    return spec


def to_dict(spec):
    return dataclasses.asdict(spec)
