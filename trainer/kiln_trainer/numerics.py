"""Numerics decided in one place: which dtype each tensor lives in, which attention kernels
may run, and what a non-finite step does. Each rule answers a failure seen on a real GPU
(shared notes, gpu-findings.md): bf16 NaN reported as success, cuDNN attention crashing
in backward, and bf16 on a CPU refused because inputs stayed fp32.

Dtype policy: the frozen base sits in the compute dtype (or 8/4-bit storage, quantize.py);
trainable weights and optimizer state stay fp32, except a FULL fine-tune whose fp32 master
weights do not fit the card, which trains bf16 weights (memory.py decides); inputs are cast
to the model's dtype at the call, so the model runs with autocast or without it; the loss is
computed in fp32. fp16 is refused for training (FLUX
activations overflow it, and a loss scaler would only hide that as skipped steps)."""

import importlib.metadata
import math
import os

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MAX_GRAD_NORM = 1.0


def compute_dtype(name, device):
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def dtype_name(dtype):
    return next(k for k, v in DTYPES.items() if v == dtype)


def autocast(device, dtype):
    """Matmuls in the compute dtype, reductions and norms where autocast keeps them fp32."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def input_dtype(transformer):
    """The dtype of the layer the latents meet first: the base's dtype under LoRA, the
    master weights' dtype in a full fine-tune."""
    return transformer.x_embedder.weight.dtype


def trainable_to_fp32(params):
    for p in params:
        p.data = p.data.float()
    return params


# ----------------------------------------------------------------------------- attention

SDPA_BACKENDS = [  # (name, is-enabled flag) in the order torch prefers them
    ("flash", torch.backends.cuda.flash_sdp_enabled),
    ("efficient", torch.backends.cuda.mem_efficient_sdp_enabled),
    ("cudnn", torch.backends.cuda.cudnn_sdp_enabled),
    ("math", torch.backends.cuda.math_sdp_enabled),
]


def configure_attention():
    """Process-wide, before the first attention call. A scoped `sdpa_kernel` context does not
    reach the recompute that gradient checkpointing runs inside backward(), and a context
    object that is never kept is garbage-collected and restores the defaults at once."""
    torch.backends.cuda.enable_cudnn_sdp(False)  # its backward crashes on torch 2.11 + CUDA 13
    torch.backends.cuda.enable_flash_sdp(True)
    torch.backends.cuda.enable_mem_efficient_sdp(True)
    torch.backends.cuda.enable_math_sdp(True)
    return attention_backends()


def attention_backends():
    return [name for name, enabled in SDPA_BACKENDS if enabled()]


# ----------------------------------------------------------------------------- what ran


def versions(device):
    def pkg(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    cuda = device.type == "cuda"
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "diffusers": pkg("diffusers"),
        "peft": pkg("peft"),
        "transformers": pkg("transformers"),
        "bitsandbytes": pkg("bitsandbytes"),
    }


def describe(dtype, attention, vers):
    stack = ", ".join(f"{k} {v}" for k, v in vers.items() if v is not None)
    return f"dtype {dtype_name(dtype)}, attention [{', '.join(attention)}], {stack}"


# ----------------------------------------------------------------------------- the guard


class NonFinite(Exception):
    """A run whose numbers went non-finite beyond what skipping a step can absorb."""


def fault_steps():
    """Steps whose gradients a test wants poisoned with NaN: KILN_FAULT_NAN_GRAD_STEPS=3,4,5."""
    raw = os.environ.get("KILN_FAULT_NAN_GRAD_STEPS", "").strip()
    try:
        return {int(s) for s in raw.split(",") if s.strip()}
    except ValueError as e:
        raise ValueError(f"KILN_FAULT_NAN_GRAD_STEPS must be a comma list of step numbers, got {raw!r}") from e


def fault_step_seconds():
    """The least time a step takes, for tests that need training to outlast an outage: KILN_FAULT_STEP_SECONDS=0.05."""
    raw = os.environ.get("KILN_FAULT_STEP_SECONDS", "").strip()
    try:
        return float(raw) if raw else 0.0
    except ValueError as e:
        raise ValueError(f"KILN_FAULT_STEP_SECONDS must be a number of seconds, got {raw!r}") from e


def poison_grads(params):
    for p in params:
        if p.grad is not None:
            p.grad.fill_(float("nan"))


class Guard:
    """Decides, before each optimizer step, whether the update may be applied.

    A non-finite loss or gradient norm skips the update. The run fails instead on the first
    step it trains (nothing good is known yet), on `in_a_row` skips in a row, or once
    `min_steps` have run when more than `max_fraction` of all steps were skipped."""

    def __init__(self, context, emit, skipped=(), in_a_row=3, max_fraction=0.05, min_steps=20, first_step=1):
        self.context, self.emit, self.skipped = context, emit, list(skipped)
        self.in_a_row, self.max_fraction, self.min_steps = in_a_row, max_fraction, min_steps
        self.first_step, self.run = first_step, 0

    def allows(self, step, loss, grad_norm):
        self.run += 1
        norm = float(grad_norm)
        if math.isfinite(loss) and math.isfinite(norm):
            return True
        what = "loss" if not math.isfinite(loss) else "gradient norm"
        value = loss if not math.isfinite(loss) else norm
        self.skipped.append(step)
        streak = self._streak(step)
        why = None
        if step == self.first_step:
            why = "on the first step of the run"
        elif streak >= self.in_a_row:
            why = f"on {streak} steps in a row ({', '.join(map(str, self.skipped[-streak:]))})"
        elif step >= self.min_steps and len(self.skipped) > self.max_fraction * step:
            why = f"on {len(self.skipped)} of {step} steps, more than {self.max_fraction:.0%}"
        if why:
            raise NonFinite(
                f"non-finite {what} ({value}) at step {step}: the run stopped after non-finite "
                f"numbers {why}; no weights from those steps were saved. {self.context}. "
                "Try dtype fp32 or a lower learning_rate."
            )
        self.emit(
            "skipped_step",
            step=step,
            message=f"non-finite {what} ({value}) at step {step}; update skipped, "
            f"weights and optimizer state unchanged",
        )
        return False

    def _streak(self, step):
        n = 0
        while n < len(self.skipped) and self.skipped[-1 - n] == step - n:
            n += 1
        return n


def assert_finite(named_params, what):
    """Nothing non-finite is ever written to a checkpoint or an export."""
    for name, p in named_params:
        if not torch.isfinite(p.detach()).all():
            raise NonFinite(f"non-finite values in {name}; refusing to write {what}")
