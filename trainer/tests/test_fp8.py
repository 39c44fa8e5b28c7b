"""The fp8 base's layer on its own: what it computes against nn.Linear, what it keeps, and what
PEFT and module casts may not do to its bytes. Trained end to end in test_lowbit.py."""

import pytest
import torch
from torch import nn

from kiln_trainer import fp8


def layers(dtype, bias=True):
    torch.manual_seed(0)
    plain = nn.Linear(256, 128, bias=bias).to(dtype)
    return plain, fp8.Fp8Linear(plain, torch.device("cpu"), dtype)


def relative(a, b):
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_output_and_input_gradient_are_those_of_the_linear_within_fp8_precision(dtype):
    plain, layer = layers(dtype)
    x = torch.randn(2, 40, 256, dtype=dtype, requires_grad=True)  # 80 rows: not a multiple of 16
    grad = torch.randn(2, 40, 128, dtype=dtype)
    want, got = plain(x), layer(x)
    assert got.shape == want.shape and got.dtype == dtype
    # e4m3 keeps 3 mantissa bits (about 3% per product, partly averaging out); e5m2 gradients 2
    assert relative(got, want) < 0.06
    (want_dx,) = torch.autograd.grad(want, x, grad)
    (got_dx,) = torch.autograd.grad(got, x, grad)
    assert got_dx.dtype == dtype and relative(got_dx, want_dx) < 0.1
    assert relative(layer.dequantized(), plain.weight) < 0.04


def test_the_weight_is_one_byte_a_weight_and_gets_no_gradient():
    plain, layer = layers(torch.bfloat16, bias=False)
    assert layer.weight.dtype == torch.uint8 and layer.weight.numel() == plain.weight.numel()
    assert not layer.weight.requires_grad
    x = torch.randn(16, 256, dtype=torch.bfloat16, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is None and x.grad is not None


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("left", [fp8.E4M3, fp8.E5M2])
def test_the_cpu_product_is_torchs_scaled_mm(left, out_dtype):
    """The fp32 product a CPU computes instead is the one torch._scaled_mm computes from the same
    bytes and scales (at a size where oneDNN's reference loop takes milliseconds)."""
    torch.manual_seed(0)
    w, w_scale = fp8.to_fp8(torch.randn(32, 64), fp8.E4M3)
    backward = left == fp8.E5M2  # the gradient times W, column-major; else the input times W^T
    a, a_scale = fp8.to_fp8(torch.randn(48, 32 if backward else 64), left)
    b = w.t().contiguous().t() if backward else w.t()
    want = torch._scaled_mm(a, b, scale_a=a_scale, scale_b=w_scale, out_dtype=out_dtype)
    got = fp8.scaled_mm(a, b, a_scale, w_scale, out_dtype)
    assert got.dtype == out_dtype
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_frozen_input_needs_no_backward_matmul(monkeypatch):
    """The first block's input wants no gradient, and neither does anything else of the layer's:
    autograd skips its backward, and the LoRA beside it still trains."""
    _, layer = layers(torch.float32)
    calls, scaled_mm = [], fp8.scaled_mm
    monkeypatch.setattr(fp8, "scaled_mm", lambda *a: calls.append(a[0].dtype) or scaled_mm(*a))
    lora = nn.Linear(256, 128, bias=False)
    for wants_grad, expected in ((False, [fp8.E4M3]), (True, [fp8.E4M3, fp8.E5M2])):
        calls.clear()
        x = torch.randn(16, 256, requires_grad=wants_grad)
        (layer(x) + lora(x)).sum().backward()
        assert calls == expected and lora.weight.grad is not None


def test_a_non_finite_input_stays_non_finite():
    """fp8 casts saturate; an inf must not become a plausible 448 for the step's guard to miss."""
    _, layer = layers(torch.bfloat16)
    x = torch.randn(16, 256, dtype=torch.bfloat16)
    x[3, 7] = float("inf")
    assert not torch.isfinite(layer(x)).all()


def test_casts_and_peft_leave_the_fp8_bytes_alone():
    from peft import LoraConfig, inject_adapter_in_model

    _, layer = layers(torch.bfloat16)
    before = layer.dequantized().clone()
    model = inject_adapter_in_model(LoraConfig(r=4, target_modules=["0"]), nn.Sequential(layer))
    model.to(torch.float32)
    assert torch.equal(model[0].base_layer.dequantized(), before)
    assert model[0].lora_A["default"].weight.dtype == torch.float32


def test_compiled_it_computes_what_it_does_eagerly():
    _, layer = layers(torch.float32)
    x = torch.randn(32, 256, requires_grad=True)
    eager = layer(x)
    (eager_dx,) = torch.autograd.grad(eager.sum(), x)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)(x)
    (compiled_dx,) = torch.autograd.grad(compiled.sum(), x)
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(compiled_dx, eager_dx)


def test_a_layer_size_fp8_matmuls_cannot_take_is_refused_at_load():
    with pytest.raises(fp8.Unsupported, match=r"divisible by 16, and this base has a 40x32 block linear"):
        fp8.Fp8Linear(nn.Linear(40, 32), torch.device("cpu"), torch.float32)


def test_a_card_without_fp8_matmuls_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 3090")
    from types import SimpleNamespace

    from kiln_trainer import quantize

    model = SimpleNamespace(transformer_blocks=[nn.Sequential(nn.Linear(32, 32))], single_transformer_blocks=[])
    with pytest.raises(fp8.Unsupported, match=r"RTX 3090 is 8\.6.*'int8' or 'nf4'"):
        quantize.quantize_blocks(model, "fp8", torch.device("cuda", 0), torch.bfloat16)
    assert type(model.transformer_blocks[0][0]) is nn.Linear  # refused before anything changed
    fp8.require(torch.device("cpu"))
