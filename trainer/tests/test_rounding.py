"""bf16 trained weights (FULL fine-tuning where fp32 ones do not fit): updates rounded
stochastically, so that the small ones a 1e-5 learning rate makes are not lost."""

import bitsandbytes as bnb
import pytest
import torch

from kiln_trainer import rounding, train

STEP = 2**-7  # bf16's spacing between 1 and 2


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_stochastic_rounding_is_unbiased_and_keeps_what_bf16_holds(sign):
    x = sign * (1.0 + STEP / 8)  # an eighth of the way from 1 to the next bf16
    src = torch.full((200_000,), x, dtype=torch.float32)
    dst = torch.empty_like(src, dtype=torch.bfloat16)
    rounding.stochastic_round_(dst, src, torch.Generator().manual_seed(0))
    assert set(dst.float().unique().tolist()) == {sign * 1.0, sign * (1.0 + STEP)}
    assert (dst.float().abs() > 1).float().mean().item() == pytest.approx(1 / 8, abs=0.005)
    assert dst.double().mean().item() == pytest.approx(x, abs=STEP / 100)

    exact = torch.tensor([0.0, 1.0, -2.5, 3.0e-3, float("inf")]).bfloat16().float()
    out = torch.empty_like(exact, dtype=torch.bfloat16)
    rounding.stochastic_round_(out, exact)
    assert torch.equal(out.float(), exact)


def moved(dtype, params_dtype_opt, steps=50, lr=1e-5):
    """How far AdamW moves weights of std 0.02 under a fixed gradient."""
    g = torch.Generator().manual_seed(0)
    w0, grad = torch.randn(256, 256, generator=g) * 0.02, torch.randn(256, 256, generator=g)
    p = torch.nn.Parameter(w0.to(dtype, copy=True))
    opt = params_dtype_opt([p], lr=lr, weight_decay=0)
    for _ in range(steps):
        p.grad = grad.to(dtype)
        opt.step()
    assert p.dtype == dtype
    return p.detach().float() - w0.to(dtype).float()


def test_small_updates_survive_in_bf16_weights():
    fp32 = moved(torch.float32, bnb.optim.AdamW8bit)
    nearest = moved(torch.bfloat16, bnb.optim.AdamW8bit)
    stochastic = moved(torch.bfloat16, rounding.AdamW8bitBf16)

    def corr(d):
        return torch.corrcoef(torch.stack([d.flatten(), fp32.flatten()]))[0, 1].item()

    # rounding to nearest: most weights never move, and the rest move the wrong amount
    assert (nearest == 0).float().mean() > 0.7 and nearest.abs().mean() < 0.3 * fp32.abs().mean()
    # stochastic: the fp32 run's movement, weight by weight up to the rounding's noise
    assert (stochastic == 0).float().mean() < 0.05 and corr(stochastic) > 0.85 > 0.5 > corr(nearest)
    assert stochastic.abs().mean().item() == pytest.approx(fp32.abs().mean().item(), rel=0.03)
    assert torch.equal(stochastic, moved(torch.bfloat16, rounding.AdamW8bitBf16))  # seeded: a resume rounds alike


def test_the_optimizer_rounds_stochastically_only_where_weights_are_bf16():
    bf16, fp32 = torch.nn.Parameter(torch.zeros(8, dtype=torch.bfloat16)), torch.nn.Parameter(torch.zeros(8))
    opt, name = train.make_optimizer("adamw8bit", [bf16], 1e-4, seed=3)
    assert isinstance(opt, rounding.AdamW8bitBf16) and name == "adamw8bit" and opt.seed == 3
    assert train.weight_rounding(opt) == "stochastic"
    assert train.weight_rounding(train.make_optimizer("adafactor", [bf16], 1e-4)[0]) == "nearest"
    opt, _ = train.make_optimizer("adamw8bit", [fp32], 1e-4)
    assert type(opt) is bnb.optim.AdamW8bit and train.weight_rounding(opt) is None
