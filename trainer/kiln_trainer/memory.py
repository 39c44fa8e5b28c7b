"""How much device memory a FLUX training run needs, and the plan that makes it fit.

The estimate is a sum of parts a reader can check against a measured peak:
  weights      the frozen base in its storage format (bf16, int8, NF4 or fp8 for the block linears)
  trainable    the weights being trained, their gradients and the optimizer's state
  activations  what the backward keeps, per block and per token: all of a block's
               intermediates, or only its input when the block is checkpointed
and the two other peaks of a run, compared with training's: encoding the captions (the text
encoders alone on the card, before the transformer loads) and decoding a sample (the VAE).

The planner then picks, in this order, the first plan that fits: the base unquantized, then
8-bit, then NF4 (quantizing only when the card is too small for bf16), and within each the fewest
checkpointed blocks (checkpointing only as much as needed). An fp8 base is only ever asked for: it
is a speed option (fp8 matmuls), not yet measured on a GPU. FULL fine-tuning keeps fp32 master
weights where they fit and bf16 weights where only those do."""

import glob
import json
import math
import os

GIB = 2**30

# The FLUX.1-dev transformer as published (black-forest-labs/FLUX.1-dev, transformer/config.json).
FLUX_DEV = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
FLUX_DEV_TEXT_TOKENS = 512
# Parameters of each FLUX.1-dev component as published (bench/gpu/test_check.py builds them)
FLUX_DEV_PARAMS = {
    "transformer": 11_901_408_320,
    "text_encoder_2": 4_762_310_656,
    "text_encoder": 123_060_480,
    "vae": 83_819_683,
}

# Bytes per weight of a quantized block linear: NF4 packs two weights a byte and keeps one
# absmax per 64 weights, itself stored in 8 bits with an fp32 scale per 256 absmaxes (bitsandbytes'
# compressed statistics); int8 adds one fp32 scale per output row (counted per layer below).
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
OPTIMIZER_STATE_BYTES = {"adamw": 8.0, "adamw8bit": 2.0 + 8 / 256, "adafactor": 0.5, "prodigy": 16.0}

# Fitted to the product's own step on an H200 (check.py speed, 2026-11-27: fp32 LoRA under bf16
# autocast, adamw8bit): peaks of 33.9 and 56.1 GiB at 512 and 1024 px without checkpointing leave
# 43.5 and 44.0 bytes per token per hidden unit per block beyond weights, LoRA state and workspace
# (about 22 bf16 tensors of the hidden width; the bench's bf16-LoRA step keeps 35). With every
# block checkpointed the 23.5 and 25.4 GiB peaks match each block keeping its bf16 input (2 bytes
# per token per unit) plus one block's recompute, within 0.25 GiB.
ACTIVATION_BYTES = 44.0
CHECKPOINTED_BYTES = 2.0
# A quantized base (every block checkpointed) peaked 2.0 GiB above the rest of this model at 1024 px
# and 0.5 at 512, for NF4 and int8 alike: about 3.5 more blocks' worth of activations. The cause,
# found since on a CPU: the quantized linears answered CUDA autocast's fp32 layer-norm outputs in
# fp32, so FLUX's residual stream ran in fp32 and each checkpointed block kept a 4-byte input
# (1.5 and 0.5 GiB over 56 blocks, plus the block being recomputed). quantize.py now answers in
# the compute dtype. This stays as a margin until check.py's speed rows measure the fixed path
# on a GPU (they report the stream's dtype); the quantized peaks should then fall about this much
# below the estimate, and it goes.
QUANTIZED_EXTRA_BLOCKS = 3.5
WORKSPACE_GIB = 0.25  # cuBLAS/attention workspaces, the loss in fp32, one dequantized layer
# The VAE decoder's last stage runs at full resolution with 128 channels; about six such bf16
# maps are live at once. Not yet checked against a measured peak.
VAE_DECODE_BYTES_PER_PIXEL = 6 * 128 * 2


def usable_gib(total_gib):
    """What a run may plan to allocate on a card of total_gib: the CUDA context, cached allocator
    blocks and fragmentation take the rest (max_memory_allocated never sees them). On the H200,
    11.7 GiB allocated ran under a 12 GiB cap (which leaves the context out): this keeps 10.9."""
    return total_gib * 0.92 - 0.1


def shapes(config, rank):
    """From a transformer config, built on the meta device (no memory): the (in, out) of each
    block linear, the count of all other parameters, and the LoRA's parameter count."""
    import torch
    from diffusers import FluxTransformer2DModel
    from torch import nn

    from .lora import TARGET

    with torch.device("meta"):
        model = FluxTransformer2DModel.from_config(config)
    block_linears, lora_params, in_blocks = [], 0, 0
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear):
            continue
        if name.startswith(("transformer_blocks.", "single_transformer_blocks.")):
            block_linears.append((m.in_features, m.out_features))
            in_blocks += m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        if TARGET.match(name):
            lora_params += rank * (m.in_features + m.out_features)
    total = sum(p.numel() for p in model.parameters())
    return dict(
        block_linears=block_linears,
        other_params=total - in_blocks,
        total_params=total,
        lora_params=lora_params,
        blocks=config["num_layers"] + config["num_single_layers"],
        hidden=config["num_attention_heads"] * config["attention_head_dim"],
    )


def base_weight_bytes(model, quantize, compute_bytes):
    """The frozen base's bytes with its block linears stored as `quantize` (None: the compute dtype).
    Biases and everything outside the blocks stay in the compute dtype."""
    out = model["other_params"] * compute_bytes
    for i, o in model["block_linears"]:
        if quantize == "nf4":
            out += i * o * NF4_BYTES + o * compute_bytes
        elif quantize == "int8":
            out += i * o + o * 4 + o * compute_bytes
        elif quantize == "fp8":  # one fp32 scale per layer
            out += i * o + 4 + o * compute_bytes
        else:
            out += (i * o + o) * compute_bytes
    return out


def estimate(
    model,
    *,
    resolution,
    batch,
    text_tokens,
    training_type,
    optimizer,
    quantize,
    checkpointed,
    trainable_bytes,
    compute_bytes,
    encoder_params=0,
    vae_params=0,
):
    """The peak bytes of each phase, and the parts of training's peak in GiB."""
    tokens = batch * ((resolution // 16) ** 2 + text_tokens)
    per_unit = tokens * model["hidden"] * compute_bytes / 2  # the fits were made in bf16
    full, kept = ACTIVATION_BYTES * per_unit, CHECKPOINTED_BYTES * per_unit
    plain = model["blocks"] - checkpointed
    activations = plain * full + checkpointed * kept + (full if checkpointed else 0)
    if quantize in ("nf4", "int8"):  # measured on bitsandbytes; fp8.py always answered in the compute dtype
        activations += QUANTIZED_EXTRA_BLOCKS * full
    weights = base_weight_bytes(model, quantize, compute_bytes)
    n_train = model["lora_params"] if training_type == "LORA" else model["total_params"]
    if training_type == "FULL":  # trained weights replace the frozen copy
        weights = 0
    state = n_train * (2 * trainable_bytes + OPTIMIZER_STATE_BYTES[optimizer])
    workspace = WORKSPACE_GIB * GIB
    train = weights + state + activations + workspace
    sample = weights + n_train * trainable_bytes + vae_params * compute_bytes
    sample += resolution**2 * VAE_DECODE_BYTES_PER_PIXEL * compute_bytes / 2 + workspace  # one image at a time
    encode = encoder_params * compute_bytes + workspace
    parts = dict(
        base_weights=weights,
        trainable_weights_gradients_optimizer=state,
        activations=activations,
        workspace=workspace,
    )
    return dict(
        peak=max(train, sample, encode),
        training=train,
        sampling=sample,
        encoding=encode,
        parts={k: round(v / GIB, 2) for k, v in parts.items()},
    )


def plan(
    model,
    *,
    gpu_memory_gib,
    resolution,
    training_type,
    optimizer="adamw8bit",
    batch=1,
    text_tokens=FLUX_DEV_TEXT_TOKENS,
    quantize="auto",
    gradient_checkpointing="auto",
    compute_bytes=2,
    encoder_params=0,
    vae_params=0,
):
    """The first plan that fits `gpu_memory_gib` (None: no limit, e.g. a CPU run), as the JSON
    the `plan` command prints and the trainer's `started` event carries.

    quantize: "auto", "none", "nf4", "int8" or "fp8"; gradient_checkpointing: "auto", True (every
    block) or False. Explicit choices are kept even when they do not fit: the plan then says so."""
    blocks = model["blocks"]
    if training_type == "FULL":
        quants = [None]
    elif quantize == "auto":
        quants = [None, "int8", "nf4"]
    else:
        quants = [None if quantize == "none" else quantize]
    ckpts = range(blocks + 1) if gradient_checkpointing == "auto" else [blocks if gradient_checkpointing else 0]
    # fp32 master weights train best; FULL on a bf16 device falls back to bf16 weights to fit
    trainables = [4] if training_type == "LORA" or compute_bytes == 4 else [4, 2]
    budget = None if gpu_memory_gib is None else usable_gib(gpu_memory_gib) * GIB
    common = dict(
        resolution=resolution,
        batch=batch,
        text_tokens=text_tokens,
        training_type=training_type,
        optimizer=optimizer,
        compute_bytes=compute_bytes,
        encoder_params=encoder_params,
        vae_params=vae_params,
    )
    tried = []
    for trainable in trainables:
        for q in quants:
            for c in ckpts:
                est = estimate(model, quantize=q, checkpointed=c, trainable_bytes=trainable, **common)
                if budget is None or est["peak"] <= budget:
                    return _result(True, q, c, trainable, est, tried, model, common, gpu_memory_gib)
            label = q or "bf16"
            if training_type == "FULL":
                label = f"{'fp32' if trainable == 4 else 'bf16'} trained weights"
            tried.append((q, trainable, est, label))  # the last of ckpts: the least memory at this setting
    q, trainable, est, _ = min(tried, key=lambda t: t[2]["peak"])
    return _result(False, q, ckpts[-1], trainable, est, tried, model, common, gpu_memory_gib)


def _result(feasible, quantize, checkpointed, trainable_bytes, est, tried, model, common, gpu_gib):
    peak, blocks, optimizer = est["peak"] / GIB, model["blocks"], common["optimizer"]
    return dict(
        feasible=feasible,
        quantize=quantize,
        gradient_checkpointing=checkpointed > 0,
        checkpointed_blocks=checkpointed,
        blocks=blocks,
        optimizer=optimizer,
        trainable_dtype="fp32" if trainable_bytes == 4 else "bf16",
        estimated_peak_gib=round(peak, 2),
        estimated_phases_gib={k: round(est[k] / GIB, 2) for k in ("training", "sampling", "encoding")},
        parts_gib=est["parts"],
        gpu_memory_gib=gpu_gib,
        usable_gib=None if gpu_gib is None else round(usable_gib(gpu_gib), 2),
        reason=_reason(feasible, quantize, checkpointed, blocks, trainable_bytes, est, gpu_gib, tried, common),
        trainable_parameters=model["lora_params" if common["training_type"] == "LORA" else "total_params"],
    )


def _reason(feasible, quantize, checkpointed, blocks, trainable_bytes, est, gpu_gib, tried, common):
    peak, full = est["peak"] / GIB, common["training_type"] == "FULL"
    if gpu_gib is None:
        return "no device memory limit (a CPU run): nothing to fit"
    usable = usable_gib(gpu_gib)
    ckpt = "no block checkpointed" if not checkpointed else f"{checkpointed} of {blocks} blocks checkpointed"
    where = f"{peak:.1f} of the {usable:.1f} GiB usable on a {gpu_gib:g} GiB card"
    if feasible:
        base = "the base in bf16" if quantize is None else f"the base quantized to {quantize}"
        why = ""
        if tried:
            others = ", ".join(f"{label} {e['peak'] / GIB:.1f} GiB" for _, _, e, label in tried)
            why = f" (the least that does not fit: {others})"
        if full:
            base = f"{'fp32' if trainable_bytes == 4 else 'bf16'} trained weights"
        return f"{base}{why}, {ckpt}: {where}"
    parts = ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in est["parts"].items())
    phase = max(("training", "sampling", "encoding"), key=lambda k: est[k])
    if phase != "training":  # say so, or the parts (training's) would not add up to the peak
        parts = f"its peak is {phase}: {est[phase] / GIB:.1f} GiB; training {est['training'] / GIB:.1f} = {parts}"
    need = math.ceil((peak + 0.3) / 0.92)
    fixes = f"a card of at least {need} GiB"
    if quantize is None and not full and "int8" not in [t[0] for t in tried]:
        fixes += ", or quantize 'auto'"
    if not checkpointed:
        fixes += ", or gradient checkpointing"
    if full:
        fixes += " (a quantized base is for LoRA only; LoRA needs far less)"
    return (
        f"does not fit: the smallest plan needs {peak:.1f} GiB ({parts}; {ckpt}, {common['optimizer']}) "
        f"but a {gpu_gib:g} GiB card leaves {usable:.1f} usable. Needs {fixes}"
    )


# ----------------------------------------------------------------------------- the trainer's plan


class DoesNotFit(Exception):
    pass


def device_memory_gib(device):
    """The card's memory, or KILN_GPU_MEMORY_GIB (to plan for a smaller card than the one here,
    or to plan at all on a CPU); None on a CPU without it."""
    import torch

    raw = os.environ.get("KILN_GPU_MEMORY_GIB", "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1
        if not value > 0:
            raise DoesNotFit(f"KILN_GPU_MEMORY_GIB must be a number of GiB > 0, got {raw!r}")
        return value
    if device.type == "cuda":
        return round(torch.cuda.get_device_properties(device).total_memory / GIB, 2)
    return None


def count_params(folder):
    """Parameters in a folder's safetensors files, read from their headers (nothing loaded)."""
    from safetensors import safe_open

    n = 0
    for path in glob.glob(os.path.join(folder, "*.safetensors")):
        with safe_open(path, "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                n += math.prod(f.get_slice(key).get_shape())
    return n


def text_tokens(source):
    try:
        with open(os.path.join(source, "tokenizer_2", "tokenizer_config.json")) as f:
            return min(FLUX_DEV_TEXT_TOKENS, int(json.load(f)["model_max_length"]))
    except (OSError, ValueError, KeyError, TypeError):
        return FLUX_DEV_TEXT_TOKENS


def model_inputs(source, rank):
    """What the planner needs of a model: its shapes and the sizes of the other components, from
    a diffusers folder's own files, or FLUX.1-dev's published ones for source None."""
    if source is None:
        return dict(
            model=shapes(FLUX_DEV, rank),
            text_tokens=FLUX_DEV_TEXT_TOKENS,
            encoder_params=FLUX_DEV_PARAMS["text_encoder"] + FLUX_DEV_PARAMS["text_encoder_2"],
            vae_params=FLUX_DEV_PARAMS["vae"],
        )
    from diffusers import FluxTransformer2DModel

    return dict(
        model=shapes(FluxTransformer2DModel.load_config(source, subfolder="transformer"), rank),
        text_tokens=text_tokens(source),
        encoder_params=sum(count_params(os.path.join(source, d)) for d in ("text_encoder", "text_encoder_2")),
        vae_params=count_params(os.path.join(source, "vae")),
    )


def for_run(spec, source, device, compute_dtype):
    """The plan for a TrainSpec on `device`, from the model folder's own config and files."""
    return plan(
        gpu_memory_gib=device_memory_gib(device),
        resolution=max(spec.resolution),
        training_type=spec.training_type,
        optimizer=spec.optimizer,
        batch=spec.batch_size,
        quantize=spec.quantize,
        gradient_checkpointing=spec.gradient_checkpointing,
        compute_bytes=compute_dtype.itemsize,
        **model_inputs(source, spec.rank),
    )
