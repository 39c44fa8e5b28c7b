"""Where model weights come from. Three sources, one code path: every source resolves to
something `from_pretrained` understands (a folder or a repo id), then components are
loaded one by one so that only what a phase needs is ever in memory."""

import logging
import os
import re

import torch

from . import tiny

log = logging.getLogger("kiln.models")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(Exception):
    def __init__(self, message, where="spec.base_model_path"):
        super().__init__(message)
        self.where = where


def pick_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(
            f"device {name!r} requested but CUDA is not available; use device 'auto' or 'cpu'", "spec.device"
        )
    return torch.device(name)


def resolve(base):
    """Return (source for from_pretrained, is_builtin)."""
    if base == "builtin:tiny-flux":
        if not os.path.isfile(os.path.join(tiny.PRETRAINED, "model_index.json")):
            raise ModelError(
                f"the built-in tiny model is missing from {tiny.PRETRAINED}; reinstall the trainer package, "
                "or remake it with `python -m kiln_trainer pretrain-tiny --out " + tiny.PRETRAINED + "`"
            )
        return tiny.PRETRAINED, True
    if os.path.isdir(base):
        if not os.path.isfile(os.path.join(base, "model_index.json")):
            raise ModelError(f"{base} is not a diffusers pipeline folder (no model_index.json)")
        return base, False
    if base.startswith(("/", ".", "~")) or not REPO_ID.match(base):
        raise ModelError(
            f"model folder {base!r} does not exist; give an existing diffusers folder, "
            "a Hugging Face repo id such as black-forest-labs/FLUX.1-dev, or builtin:tiny-flux"
        )
    return snapshot(base), False


# The diffusers components; a hub repo may also hold single-file checkpoints we never read.
DIFFUSERS_FILES = [
    "model_index.json",
    "scheduler/*",
    "tokenizer/*",
    "tokenizer_2/*",
    "text_encoder/*",
    "text_encoder_2/*",
    "vae/*",
    "transformer/*",
]


def snapshot(repo):
    """A repo id as a local folder: the HF cache when it holds the model (no network at all),
    else a download of the diffusers components. An unreachable hub fails in seconds rather
    than after the per-file retries of every component load."""
    from huggingface_hub import model_info, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo, local_files_only=True, allow_patterns=DIFFUSERS_FILES)
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelError(
            _explain(repo, LocalEntryNotFoundError(f"{repo} is not in the local cache and HF_HUB_OFFLINE is set"))
        )
    try:
        model_info(repo, timeout=10)
        log.info("downloading %s into the Hugging Face cache", repo)
        return snapshot_download(repo, allow_patterns=DIFFUSERS_FILES)
    except Exception as e:
        raise ModelError(_explain(repo, e)) from e


def _explain(source, e):
    """Turn hub/IO failures into an actionable message for the operator."""
    from huggingface_hub import errors as hub

    name = type(e).__name__
    fix = (
        f"set HF_TOKEN (and accept the model licence on huggingface.co), or run "
        f"`huggingface-cli download {source}` on a machine with network and copy the HF cache "
        f"(HF_HOME), or use builtin:tiny-flux"
    )
    chain = [e]
    while len(chain) < 10 and (chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)

    def is_a(cls):
        return any(isinstance(x, cls) for x in chain if cls is not None)

    if is_a(getattr(hub, "GatedRepoError", None)) or "gated" in str(e).lower():
        return f"{source} is gated: access denied ({name}). Fix: {fix}"
    if is_a(getattr(hub, "RepositoryNotFoundError", None)):
        return f"{source} not found on the Hugging Face hub or not accessible ({name}). Fix: {fix}"
    return f"cannot load {source}: {name}: {str(e).splitlines()[0] if str(e) else ''}. Fix: {fix}"


def load(source, cls_name, subfolder, dtype=None):
    """Load one pipeline component (subfolder) from a folder or repo id."""
    import diffusers
    import transformers

    cls = getattr(diffusers, cls_name, None) or getattr(transformers, cls_name)
    kw = {"subfolder": subfolder}
    if dtype is not None:
        kw["dtype"] = dtype
    if os.environ.get("HF_TOKEN"):
        kw["token"] = os.environ["HF_TOKEN"]
    try:
        return cls.from_pretrained(source, **kw)
    except (OSError, ValueError) as e:
        raise ModelError(_explain(source, e)) from e
    except Exception as e:
        if type(e).__module__.startswith(("huggingface_hub", "requests", "httpx")):
            raise ModelError(_explain(source, e)) from e
        raise


def load_text(source, dtype):
    return dict(
        tokenizer=load(source, "CLIPTokenizer", "tokenizer"),
        text_encoder=load(source, "CLIPTextModel", "text_encoder", dtype),
        tokenizer_2=load(source, "T5TokenizerFast", "tokenizer_2"),
        text_encoder_2=load(source, "T5EncoderModel", "text_encoder_2", dtype),
    )


def load_vae(source, dtype):
    return load(source, "AutoencoderKL", "vae", dtype)


def load_transformer(source, dtype):
    return load(source, "FluxTransformer2DModel", "transformer", dtype)


def load_scheduler(source):
    return load(source, "FlowMatchEulerDiscreteScheduler", "scheduler")


def load_pipeline(source, dtype):
    from diffusers import FluxPipeline

    kw = {"dtype": dtype}
    if os.environ.get("HF_TOKEN"):
        kw["token"] = os.environ["HF_TOKEN"]
    try:
        return FluxPipeline.from_pretrained(source, **kw)
    except (OSError, ValueError) as e:
        raise ModelError(_explain(source, e)) from e


def max_text_len(tokenizer_2):
    # FLUX.1-dev was trained with 512 T5 tokens; tiny tokenizers declare fewer
    return min(512, int(tokenizer_2.model_max_length))


@torch.no_grad()
def encode_prompts(text, prompts, device):
    """T5 sequence + CLIP pooled embeddings, exactly as FluxPipeline.encode_prompt does."""
    from diffusers import FluxPipeline

    for m in (text["text_encoder"], text["text_encoder_2"]):
        m.to(device)
    shim = FluxPipeline(scheduler=None, vae=None, transformer=None, **text)
    out = []
    for p in prompts:
        seq, pooled, _ = shim.encode_prompt(
            prompt=p, prompt_2=None, device=device, max_sequence_length=max_text_len(text["tokenizer_2"])
        )
        out.append((seq[0].float().cpu(), pooled[0].float().cpu()))
    return out
