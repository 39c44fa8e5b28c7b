"""LoRA's weights as views of one flat buffer, and their gradients as views of another.

FLUX.1-dev's rank-16 LoRA is 836 tensors. bitsandbytes' 8-bit AdamW, the API's default
optimizer, updates them one at a time from Python, and the gradient clip and the non-finite
check walk them too: hundreds of small kernels and their launches on every step. On one buffer
each of those is a few kernels. The views keep every LoRA layer, checkpoint and export as they
were. Opt-in (`flat_lora`) until a GPU measures it: the gradient buffer stays allocated between
steps, where per-tensor gradients are freed."""

import torch
from torch import nn


def flatten(params):
    """One Parameter holding `params` (of one dtype, on one device); each becomes a view of it,
    and each one's gradient a view of its gradient. Zero that gradient in place, never drop it:
    the views would go on accumulating into the dropped buffer."""
    if len({(p.dtype, p.device) for p in params}) != 1:
        raise ValueError("flat_lora needs LoRA weights of one dtype on one device")
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    flat.parts = len(params)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset : offset + n].view_as(p)
        p.grad = flat.grad[offset : offset + n].view_as(p)
        offset += n
    return flat


def is_flat(params):
    return len(params) == 1 and getattr(params[0], "parts", 0) > 0
