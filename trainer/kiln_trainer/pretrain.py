"""`python -m kiln_trainer pretrain-tiny --out DIR`: pretrain `builtin:tiny-flux` from a seed.

Two stages on the synthetic scenes of shapes.py, top to bottom:
  1. the autoencoder, on reconstruction (L1) with a light KL, so decoded latents look like
     images; then its latent shift and scale, measured the way FLUX's were;
  2. the transformer and both text encoders together, on the rectified-flow loss that
     train.py uses, over latents cached from the frozen autoencoder.
Then the folder is written in the diffusers layout with `provenance.json` beside the
weights: the command, the seed, the wall time, the held-out losses and every file's sha256.
A rerun on the same seed lands within 6% of the recorded losses, not bit for bit: the
number of threads changes float summation order.
"""

import hashlib
import json
import math
import os
import platform
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import shapes, tiny
from .events import emit

SCENES = 24_000  # training scenes; held-out scenes come from seed + 1
HELD_OUT = 256


def lr_at(step, steps, peak, warmup=200):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))


def to_tensor(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


# ----------------------------------------------------------------------------- stage 1: autoencoder


def vae_loss(vae, x, kl_weight=1e-6):
    post = vae.encode(x).latent_dist
    recon = vae.decode(post.sample()).sample
    l1 = F.l1_loss(recon, x)
    return l1 + kl_weight * post.kl().mean(), l1


def train_vae(vae, images, held_out, steps, batch, seed, say):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # Start the posterior narrow (std 0.05): at the default std of 1 the sampled latents are
        # mostly noise, and the decoder spends its first thousand steps learning to blur.
        logvar = vae.encoder.conv_out
        logvar.weight[vae.config.latent_channels :] = 0
        logvar.bias[vae.config.latent_channels :] = -6
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    vae.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 2e-3)
        idx = torch.randint(len(images), (batch,), generator=g)
        loss, l1 = vae_loss(vae, to_tensor(images[idx.numpy()]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            say("vae", step, l1.item())
    vae.eval()
    with torch.no_grad():
        x = to_tensor(held_out)
        recon = vae.decode(vae.encode(x).latent_dist.mode()).sample
        return F.l1_loss(recon, x).item()


@torch.no_grad()
def encode_all(vae, images, batch=256):
    return torch.cat(
        [vae.encode(to_tensor(images[i : i + batch])).latent_dist.mode() for i in range(0, len(images), batch)]
    )


# ----------------------------------------------------------------------------- stage 2: flow model


def token_ids(clip_tok, t5_tok, captions):
    """Tokenized exactly as FluxPipeline.encode_prompt tokenizes a prompt."""
    clip = clip_tok(
        captions, padding="max_length", max_length=clip_tok.model_max_length, truncation=True, return_tensors="pt"
    )
    t5 = t5_tok(
        captions, padding="max_length", max_length=t5_tok.model_max_length, truncation=True, return_tensors="pt"
    )
    return clip.input_ids, t5.input_ids


def encode_text(clip, t5, clip_ids, t5_ids):
    return t5(t5_ids, output_hidden_states=False)[0], clip(clip_ids, output_hidden_states=False).pooler_output


def flow_batch_loss(models, latents, clip_ids, t5_ids, idx, g):
    from .train import flow_loss

    clip, t5, transformer = models
    x0 = latents[idx]
    seq, pooled = encode_text(clip, t5, clip_ids[idx], t5_ids[idx])
    noise = torch.randn(x0.shape, generator=g)
    sigmas = torch.sigmoid(torch.randn(len(idx), generator=g))
    guidance = float(torch.rand(1, generator=g)) * 5  # any guidance value: the model learns to ignore it
    return flow_loss(transformer, x0, seq, pooled, noise, sigmas, guidance)


def train_flow(models, latents, ids, held_out, steps, batch, seed, say):
    params = [p for m in models for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for m in models:
        m.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 1e-3)
        idx = torch.randint(len(latents), (batch,), generator=g)
        loss = flow_batch_loss(models, latents, *ids, idx, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            say("flow", step, loss.item())
    for m in models:
        m.eval()
    with torch.no_grad():  # held out, and the same noise every time: comparable across reruns
        g = torch.Generator().manual_seed(seed + 7)
        idx = torch.arange(len(held_out[0]))
        return np.mean([flow_batch_loss(models, *held_out, idx, g).item() for _ in range(8)])


# ----------------------------------------------------------------------------- the run


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(out, seed=tiny.SEED, vae_steps=2500, flow_steps=6000, batch=32, scenes=SCENES):
    from diffusers import FluxPipeline

    if os.path.exists(out) and not os.path.isfile(os.path.join(out, "model_index.json")):
        # the finished model replaces `out` whole: never a folder that is not a model
        raise ValueError(f"--out {out} exists and is not a diffusers model folder; give a new or a model folder")
    t0 = time.time()
    torch.manual_seed(seed)

    def say(stage, step, loss):
        emit("log", message=f"{stage} step {step}: loss {loss:.4f} ({time.time() - t0:.0f} s)")

    parts = tiny.build_components(seed)
    images, captions = shapes.dataset(scenes, seed)
    test_images, test_captions = shapes.dataset(HELD_OUT, seed + 1)
    emit("log", message=f"{scenes} scenes drawn ({time.time() - t0:.0f} s)")

    vae = parts["vae"]
    vae_l1 = train_vae(vae, images, test_images, vae_steps, batch, seed, say)
    latents, test_latents = encode_all(vae, images), encode_all(vae, test_images)
    # FLUX's convention: (z - shift) * scale has zero mean and unit variance
    shift, scale = latents.mean().item(), 1 / latents.std().item()
    vae.register_to_config(shift_factor=round(shift, 4), scaling_factor=round(scale, 4))
    latents = (latents - vae.config.shift_factor) * vae.config.scaling_factor
    test_latents = (test_latents - vae.config.shift_factor) * vae.config.scaling_factor

    models = (parts["text_encoder"], parts["text_encoder_2"], parts["transformer"])
    ids = token_ids(parts["tokenizer"], parts["tokenizer_2"], captions)
    held_out = (test_latents, *token_ids(parts["tokenizer"], parts["tokenizer_2"], test_captions))
    flow = train_flow(models, latents, ids, held_out, flow_steps, batch, seed, say)

    tmp = out.rstrip("/") + f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    FluxPipeline(**parts).save_pretrained(tmp, safe_serialization=True)
    files = sorted(
        os.path.relpath(os.path.join(d, f), tmp) for d, _, fs in os.walk(tmp) for f in fs if f.endswith(".safetensors")
    )
    provenance = {
        "command": f"python -m kiln_trainer pretrain-tiny --out DIR --seed {seed} --vae-steps {vae_steps} "
        f"--flow-steps {flow_steps} --batch {batch} --scenes {scenes}",
        "seed": seed,
        "wall_seconds": round(time.time() - t0, 1),
        "threads": torch.get_num_threads(),
        "held_out_losses": {"vae_l1": round(vae_l1, 5), "flow_mse": round(float(flow), 5)},
        "tolerance": "a rerun's held-out losses land within 6% of these",
        "versions": {"python": platform.python_version(), "torch": torch.__version__, **_versions()},
        "sha256": {f: sha256(os.path.join(tmp, f)) for f in files},
    }
    with open(os.path.join(tmp, "provenance.json"), "w") as f:
        json.dump(provenance, f, indent=2)
        f.write("\n")
    if os.path.exists(out):
        shutil.rmtree(out)
    os.rename(tmp, out)
    return out, provenance


def _versions():
    from importlib.metadata import version

    return {name: version(name) for name in ("diffusers", "transformers")}


if __name__ == "__main__":
    sys.exit("run as: python -m kiln_trainer pretrain-tiny --out DIR")
