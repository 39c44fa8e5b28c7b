"""A loss that can be compared across runs: the training images at fixed noise and fixed
noise levels. The training loss itself is too noisy a signal (each step draws its own
noise and timestep), so "did it learn" is asked of this one."""

import torch

from . import data, models, numerics
from .train import flow_loss

SIGMAS = (0.25, 0.5, 0.75)


@torch.no_grad()
def fixed_batch_loss(transformer, source, dataset_dir, trigger_word, resolution, device, dtype, seed=1234):
    items = data.list_images(dataset_dir, trigger_word)
    latents = data.encode_images(models.load_vae(source, dtype), items, [resolution], device, dtype)
    embeds = models.encode_prompts(models.load_text(source, dtype), [c for _, c in items], device)
    guidance = 1.0 if transformer.config.guidance_embeds else None
    g = torch.Generator("cpu").manual_seed(seed)
    losses = []
    for s in SIGMAS:
        for _, x0, ci in latents:
            noise = torch.randn((1, *x0.shape), generator=g)
            seq, pooled = embeds[ci]
            with numerics.autocast(device, dtype):
                loss = flow_loss(
                    transformer,
                    x0[None].to(device),
                    seq[None].to(device),
                    pooled[None].to(device),
                    noise.to(device),
                    torch.tensor([s], device=device),
                    guidance,
                )
            losses.append(loss.item())
    return sum(losses) / len(losses)
