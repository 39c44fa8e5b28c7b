#!/usr/bin/env python
"""Time FLUX.1-dev LoRA training steps on one GPU (random weights, no download).

For each resolution and with/without gradient checkpointing this prints one JSON line
(seconds/step, peak GPU memory, FLOPs, MFU) and finally a table. The model is built once
and reused; LoRA weights and the optimizer are reset per config, so every config is an
independent short training run.

    python bench/gpu/flux_lora_step.py                          # full model, bf16, cuda
    python bench/gpu/flux_lora_step.py --tiny --device cpu      # seconds, fp32, CPU

FLOPs are counted analytically from the shapes (see `flux_flops`); --check-flops also
counts one real step with torch's FlopCounterMode so the formula can be verified.
"""

import argparse
import contextlib
import gc
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

# FLUX_DEV: the published transformer config
from flux_dev import TRANSFORMER as FLUX_DEV, materialise_on

# Same architecture shrunk to run on a CPU in seconds. in_channels stays 64 so latent
# packing (16 channels x 2x2 patches) is the real one; rope axes must sum to the head dim.
TINY = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    pooled_projection_dim=32,
    guidance_embeds=True,
    axes_dims_rope=(4, 6, 6),
)
T5_TOKENS = {"full": 512, "tiny": 32}  # FLUX.1-dev pads T5 prompts to 512 tokens.
LORA_RANK = LORA_ALPHA = 16

# Attention and feed-forward projections of both block kinds. A regex (peft full-matches it
# against module names) so the model's final `proj_out` is NOT adapted, only the single
# blocks' one; `.*transformer_blocks` covers `single_transformer_blocks` too.
LORA_TARGETS = (
    r".*transformer_blocks\.\d+\.("
    r"attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)"
    r"|ff\.net\.(0\.proj|2)|ff_context\.net\.(0\.proj|2)|proj_mlp|proj_out)"
)

# Dense (non-sparse) bf16 tensor-core peaks in TFLOP/s; first substring match wins.
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
]


def flux_flops(cfg, n_img, n_txt, batch, rank=LORA_RANK):
    """FLOPs of one forward, split by how each part is differentiated in a LoRA step.

    A matmul (T x i) @ (i x o) is 2*T*i*o FLOPs. Joint attention over N = n_img + n_txt
    tokens is 4*N^2*D (QK^T and AV, D = heads*head_dim). Per-sample token counts are
    multiplied by `batch`.
    """
    D = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    C, J, P = cfg["in_channels"], cfg["joint_attention_dim"], cfg["pooled_projection_dim"]
    L2, L1 = cfg["num_layers"], cfg["num_single_layers"]
    Ni, Nt, B, r = n_img * batch, n_txt * batch, batch, rank
    N = Ni + Nt

    # Conditioning path: inputs never need grad and weights are frozen -> forward only.
    embed = 2 * Ni * C * D + 2 * Nt * J * D  # x_embedder, context_embedder
    embed += 2 * B * (256 * D + D * D) * (2 if cfg["guidance_embeds"] else 1)  # timestep/guidance MLPs
    embed += 2 * B * (P * D + D * D)  # pooled text projection
    embed += 2 * B * D * 2 * D  # norm_out modulation
    mod = L2 * 2 * (2 * B * D * 6 * D) + L1 * (2 * B * D * 3 * D)  # AdaLN-Zero modulation in blocks

    # Frozen block linears (each stream of a double block: q,k,v,out = 4D^2, ff = 8D^2;
    # single block: q,k,v = 3D^2, proj_mlp 4D^2, proj_out 5D^2) and the final projection.
    lin = L2 * 24 * (Ni + Nt) * D * D + L1 * 24 * N * D * D
    head = 2 * Ni * D * C
    attn = (L2 + L1) * 4 * N * N * D

    # LoRA adds 2*T*r*(in+out) per adapted layer: a double-block stream adapts
    # 4 x (D->D) + (D->4D) + (4D->D) = 18D; a single block 3 x (D->D) + (D->4D) + (5D->D) = 17D.
    lora = L2 * 2 * r * 18 * D * (Ni + Nt) + L1 * 2 * r * 17 * D * N

    # In the first double block q/k/v (both streams) read activations that do not require
    # grad yet, so autograd skips their input-gradient matmuls (base and LoRA A).
    no_dgrad_lin = 6 * N * D * D
    no_dgrad_lora = 6 * N * D * r
    return dict(
        embed=embed,
        mod=mod,
        lin=lin,
        head=head,
        attn=attn,
        lora=lora,
        no_dgrad_lin=no_dgrad_lin,
        no_dgrad_lora=no_dgrad_lora,
    )


def step_flops(f, checkpointing):
    """Convention (3x forward) and exact LoRA-step FLOPs, plus hardware FLOPs incl. recompute."""
    fwd = f["embed"] + f["mod"] + f["lin"] + f["head"] + f["attn"] + f["lora"]
    # Backward: frozen linears need only grad wrt input (1x, no weight grad); attention has
    # no weights but needs dQ, dK, dV (2x); LoRA layers need input and weight grads (2x).
    lora_step = fwd + (f["lin"] - f["no_dgrad_lin"]) + f["head"] + 2 * f["attn"] + 2 * f["lora"] - f["no_dgrad_lora"]
    # Checkpointing re-runs every block's forward during backward (not the embedders/head).
    recompute = f["mod"] + f["lin"] + f["attn"] + f["lora"] if checkpointing else 0
    return dict(fwd=fwd, step_3x=3 * fwd, step_lora=lora_step, step_hw=lora_step + recompute)


FLOPS_FORMULA = """\
# FLOPs: matmul 2*T*in*out; joint attention 4*N^2*D per block (QK^T, AV), N = image + text tokens
# fwd       = F_cond + F_lin + F_head + F_attn + F_lora
# step_lora = fwd + (F_lin - F_first_qkv) + F_head + 2*F_attn + 2*F_lora - F_first_qkv_loraA   [headline MFU]
#             (frozen base: input-grad only, no weight-grad; conditioning path needs no grad at all)
# step_3x   = 3*fwd                                        [conventional model FLOPs, mfu_3x]
# step_hw   = step_lora + block forward recompute when gradient checkpointing is on (not credited to MFU)"""


def build_model(cfg, device, dtype):
    from diffusers import FluxTransformer2DModel

    # Materialise parameters directly on the target device and dtype: the default fp32 CPU
    # init of 12B parameters would take minutes and ~48 GB of host RAM. Values are random;
    # step time does not depend on them.
    with materialise_on(device, dtype):
        model = FluxTransformer2DModel(**cfg)
    model.requires_grad_(False)
    return model


def add_lora(model):
    from peft import LoraConfig
    from peft.tuners.lora import LoraLayer

    model.add_adapter(
        LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, init_lora_weights=True, target_modules=LORA_TARGETS)
    )
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    # The FLOPs formula assumes exactly these layers: 12 per double block, 5 per single block.
    expected = 12 * model.config.num_layers + 5 * model.config.num_single_layers
    assert len(layers) == expected, f"LoRA adapted {len(layers)} layers, expected {expected}"
    return layers


def image_ids(h, w, device, dtype):
    """Position ids of packed latent tokens, built as FluxPipeline._prepare_latent_image_ids."""
    ids = torch.zeros(h, w, 3)
    ids[..., 1] += torch.arange(h)[:, None]
    ids[..., 2] += torch.arange(w)[None, :]
    return ids.reshape(h * w, 3).to(device=device, dtype=dtype)


def make_batch(cfg, resolution, n_txt, batch, device, dtype):
    """Cached random inputs with FLUX shapes: VAE latent (16 ch, /8) packed into 2x2 patches."""
    lat = resolution // 8
    latents = torch.randn(batch, 16, lat, lat, device=device, dtype=dtype)
    packed = (
        latents.view(batch, 16, lat // 2, 2, lat // 2, 2)
        .permute(0, 2, 4, 1, 3, 5)
        .reshape(batch, (lat // 2) ** 2, 16 * 4)
    )
    return dict(
        x0=packed,
        encoder_hidden_states=torch.randn(batch, n_txt, cfg["joint_attention_dim"], device=device, dtype=dtype),
        pooled_projections=torch.randn(batch, cfg["pooled_projection_dim"], device=device, dtype=dtype),
        img_ids=image_ids(lat // 2, lat // 2, device, dtype),
        txt_ids=torch.zeros(n_txt, 3, device=device, dtype=dtype),  # text tokens all sit at position 0
        guidance=torch.full((batch,), 1.0, device=device, dtype=torch.float32),
    )


def train_step(model, b, opt):
    x0 = b["x0"]
    noise = torch.randn_like(x0)
    # Rectified flow: x_t = (1-t) x0 + t noise, the model predicts the velocity noise - x0.
    # t is logit-normal as in the SD3/FLUX trainers; the model scales t by 1000 itself.
    t = torch.sigmoid(torch.randn(x0.shape[0], device=x0.device))
    tb = t.view(-1, 1, 1).to(x0.dtype)
    xt = (1 - tb) * x0 + tb * noise
    pred = model(
        hidden_states=xt,
        encoder_hidden_states=b["encoder_hidden_states"],
        pooled_projections=b["pooled_projections"],
        timestep=t,
        img_ids=b["img_ids"],
        txt_ids=b["txt_ids"],
        guidance=b["guidance"],
        return_dict=False,
    )[0]
    loss = F.mse_loss(pred.float(), (noise - x0).float())
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_step_flops(model, b, opt, device):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    # The CPU/meta SDPA kernels are not in FlopCounterMode's table; the math backend
    # decomposes attention into counted bmm's with the same FLOPs. CUDA kernels are counted.
    kernels = sdpa_kernel([SDPBackend.MATH]) if device.type != "cuda" else contextlib.nullcontext()
    with kernels, FlopCounterMode(display=False) as counter:
        train_step(model, b, opt)
    return counter.get_total_flops()


def run_config(model, lora_layers, cfg, args, device, dtype, resolution, ckpt, peak_tflops):
    n_txt = T5_TOKENS["tiny" if args.tiny else "full"]
    rec = dict(
        resolution=resolution,
        image_tokens=(resolution // 16) ** 2,
        text_tokens=n_txt,
        batch=args.batch,
        gradient_checkpointing=ckpt,
        dtype=str(dtype).replace("torch.", ""),
    )
    fl = step_flops(flux_flops(cfg, rec["image_tokens"], n_txt, args.batch), ckpt)
    rec.update({f"{k}_tflop": v / 1e12 for k, v in fl.items()})

    # Fresh LoRA (A random, B zero) and optimizer, so each config is its own training run
    # and "B became non-zero" proves that this config's steps updated the adapter.
    for layer in lora_layers:
        layer.reset_lora_parameters("default", True)
    if ckpt:
        model.enable_gradient_checkpointing()
    else:
        model.disable_gradient_checkpointing()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    try:
        b = make_batch(cfg, resolution, n_txt, args.batch, device, dtype)
        for _ in range(args.warmup):
            train_step(model, b, opt)
        times, losses = [], []
        for _ in range(args.steps):
            sync(device)
            t0 = time.perf_counter()
            losses.append(train_step(model, b, opt))
            sync(device)
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        lora_b = [layer.lora_B["default"].weight for layer in lora_layers]
        rec.update(
            status="ok",
            sec_per_step=sum(times) / len(times),
            sec_per_step_min=min(times),
            peak_mem_gib=peak,
            loss=torch.stack(losses).float().mean().item(),  # mean over timed steps
            lora_params_changed=all(bool(w.detach().abs().sum() > 0) for w in lora_b),
        )
        rec["loss_finite"] = math.isfinite(rec["loss"])
        rec["achieved_tflops"] = rec["step_lora_tflop"] / rec["sec_per_step"]
        rec["mfu"] = rec["achieved_tflops"] / peak_tflops if peak_tflops else None
        rec["mfu_3x"] = rec["step_3x_tflop"] / rec["sec_per_step"] / peak_tflops if peak_tflops else None
        if args.check_flops:
            rec["counted_step_tflop"] = count_step_flops(model, b, opt, device) / 1e12
    except torch.OutOfMemoryError:
        rec["status"] = "oom"
    finally:
        # Free activations/optimizer state before the next config (also after an OOM).
        opt.zero_grad(set_to_none=True)
        opt = b = None
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
    return rec


def detect_peak_tflops(device, override):
    if override:
        return override, "override"
    if device.type != "cuda":
        return None, "unknown (cpu)"
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS:
        if key in name:
            return tflops, name
    return None, f"{name} (unknown peak; pass --peak-tflops)"


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(results):
    cols = ["res", "ckpt", "status", "s/step", "peak GiB", "TFLOP/step", "TFLOP/s", "MFU", "MFU(3x)", "loss"]
    rows = [
        [
            str(r["resolution"]),
            "on" if r["gradient_checkpointing"] else "off",
            r["status"],
            fmt(r.get("sec_per_step"), ".4f"),
            fmt(r.get("peak_mem_gib"), ".1f"),
            fmt(r["step_lora_tflop"], ".4g"),
            fmt(r.get("achieved_tflops"), ".4g"),
            fmt(r.get("mfu"), ".1%"),
            fmt(r.get("mfu_3x"), ".1%"),
            fmt(r.get("loss"), ".4f"),
        ]
        for r in results
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    for row in [cols, *rows]:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny config, fp32 by default; for CPU smoke tests")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], help="default: bf16 (full), fp32 (--tiny)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per config")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per config")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument(
        "--resolutions",
        default=None,
        help="comma list of square image sizes in pixels, multiples of 16; default 512,1024 (full) or 128,256 (--tiny)",
    )
    ap.add_argument("--peak-tflops", type=float, default=None, help="card's dense bf16 peak TFLOP/s")
    ap.add_argument("--json-out", default=None, help="also write all results as a JSON list here")
    ap.add_argument(
        "--check-flops",
        action="store_true",
        help="count one extra step with torch FlopCounterMode (slow; for verifying the formula)",
    )
    args = ap.parse_args(argv)
    assert args.steps >= 1 and args.warmup >= 0, "need at least one timed step"

    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype or ("fp32" if args.tiny else "bf16")]
    cfg = TINY if args.tiny else FLUX_DEV
    resolutions = [int(x) for x in (args.resolutions or ("128,256" if args.tiny else "512,1024")).split(",")]
    assert all(r % 16 == 0 for r in resolutions), "resolutions must be multiples of 16 (VAE /8, 2x2 packing)"
    torch.manual_seed(0)

    peak_tflops, card = detect_peak_tflops(device, args.peak_tflops)
    t0 = time.perf_counter()
    model = build_model(cfg, device, dtype)
    lora_layers = add_lora(model)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"# model {'tiny' if args.tiny else 'FLUX.1-dev'}: {n_params / 1e6:,.1f}M params, "
        f"LoRA r={LORA_RANK} on {len(lora_layers)} layers = {n_lora / 1e6:,.3f}M trainable; "
        f"built in {time.perf_counter() - t0:.1f}s on {device} {dtype}"
    )
    print(
        f"# device: {card}; peak {peak_tflops} TFLOP/s bf16 dense; "
        f"{args.warmup} warm-up + {args.steps} timed steps per config"
    )
    print(FLOPS_FORMULA, flush=True)

    results = []
    for res in resolutions:
        for ckpt in (False, True):
            rec = run_config(model, lora_layers, cfg, args, device, dtype, res, ckpt, peak_tflops)
            results.append(rec)
            print(json.dumps(rec), flush=True)
    print_table(results)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    # A benchmark that silently trains nothing (or diverges) must not look like a pass.
    bad = [r for r in results if r["status"] == "ok" and not (r["loss_finite"] and r["lora_params_changed"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
