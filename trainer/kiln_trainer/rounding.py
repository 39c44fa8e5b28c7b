"""Training bf16 weights without fp32 master copies, as FULL fine-tuning does where those do not
fit (FLUX.1-dev on an 80 GB card).

bf16 keeps 8 bits of mantissa, and rounding an updated weight to the nearest bf16 loses every
update under half a step at the weight's size. At lr 1e-5, AdamW's updates (about lr early on)
vanish for any weight above about 3e-3 in magnitude, which is most of a transformer's: with
weights of std 0.02, 84% never moved in 50 steps. Stochastic rounding rounds up with the
probability of the remainder's share of the step, so each weight's expected value is the fp32
one and small updates add up."""

import bitsandbytes as bnb
import torch


def stochastic_round_(dst, src, generator=None):
    """dst (bf16) = src (fp32), rounded stochastically, in place. bf16 is the top half of an fp32's
    bits: adding a uniform 16-bit number to the bottom half carries into the top half with
    exactly the probability of the remainder, and truncating then rounds. Float bits are sign and
    magnitude, so the same holds for negative numbers."""
    noise = torch.randint(0, 1 << 16, src.shape, dtype=torch.int32, device=src.device, generator=generator)
    dst.copy_(((src.view(torch.int32) + noise) & -65536).view(torch.float32))


class AdamW8bitBf16(bnb.optim.AdamW8bit):
    """bitsandbytes' AdamW8bit with each bf16 parameter's update computed on an fp32 copy of the
    weight and gradient, then rounded back stochastically. One parameter at a time: the copies
    never hold more than the largest tensor. The optimizer's state is the plain one, 8-bit."""

    rounding = "stochastic"  # what the trainer reports of bf16 weights' updates

    def __init__(self, params, seed=0, **kwargs):
        super().__init__(params, **kwargs)
        self.seed = seed

    def update_step(self, group, p, gindex, pindex):
        if p.dtype != torch.bfloat16:
            return super().update_step(group, p, gindex, pindex)
        weight, grad = p.data, p.grad
        p.grad = None  # a gradient must match its parameter's dtype at every assignment
        p.data = weight.float()
        p.grad = grad.float()
        super().update_step(group, p, gindex, pindex)
        # a pure function of the seed, the step and the parameter: a resumed run rounds the same
        g = torch.Generator(p.device).manual_seed(
            self.seed * 1_000_003 + self.state[p]["step"] * 1009 + gindex * 100_003 + pindex
        )
        stochastic_round_(weight, p.data, g)
        p.grad = None
        p.data = weight
        p.grad = grad
