"""A frozen base stored in 8 or 4 bits through bitsandbytes, for LoRA on cards too small for a
bf16 FLUX, or in fp8 (fp8.py), which also multiplies in fp8. Only the linears inside the
transformer blocks are quantized: they hold 99% of the weights; the embedders, the final
projection, norms and biases stay in the compute dtype.

The bitsandbytes formats are weight-only: each forward dequantizes one layer's weight to the compute dtype
and multiplies in that dtype, and the backward dequantizes again rather than keeping the
dequantized copy alive (that would hold a bf16 base's worth of memory until the backward).
PEFT wraps every layer kind here with its own LoRA layers, so the adapter's keys are the unquantized
model's and the exported LoRA loads onto a bf16 base."""

import bitsandbytes as bnb
import torch
import torch.nn.functional as F
from torch import nn

from . import fp8


class _WeightOnly(torch.autograd.Function):
    """x W^T + b with W dequantized in the forward and again in the backward, so that only the
    quantized form is kept between them."""

    @staticmethod
    def forward(ctx, x, bias, layer):
        ctx.layer = layer
        return F.linear(x, layer.dequantized(x.dtype), bias)

    @staticmethod
    def backward(ctx, grad):
        return grad @ ctx.layer.dequantized(grad.dtype), None, None


class _WeightOnlyForward:
    compute_dtype = torch.bfloat16

    def forward(self, x):
        # The output stays in the compute dtype whatever the input's, as nn.Linear's does under
        # autocast. CUDA autocast runs layer norms in fp32; handing their fp32 back made FLUX's
        # residual stream fp32, and every checkpointed block kept twice the bytes (the 2 GiB a
        # quantized base measured above the memory model on an H200).
        x = x.to(self.compute_dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return _WeightOnly.apply(x, bias, self)


class Nf4Linear(_WeightOnlyForward, bnb.nn.Linear4bit):
    """bitsandbytes' NF4 storage (blockwise absmax, double-quantized statistics)."""

    def dequantized(self, dtype):
        return bnb.functional.dequantize_4bit(self.weight.data, self.weight.quant_state).to(dtype)


class Int8Linear(_WeightOnlyForward, bnb.nn.Linear8bitLt):
    """bitsandbytes' 8-bit storage (row-wise absmax, Int8Params); Linear8bitLt's own forward
    would quantize the activations too."""

    def dequantized(self, dtype):
        return self.weight.data.to(dtype) * (self.weight.SCB.to(dtype) / 127).unsqueeze(1)


def _layer(kind, linear, device, compute_dtype):
    """The quantized copy of one linear, on `device`. The shell is made on the meta device: a
    real one would first draw a random fp32 weight, minutes of work over FLUX.1-dev's 12 B."""
    if kind == "fp8":
        return fp8.Fp8Linear(linear, device, compute_dtype)
    shape, bias = (linear.in_features, linear.out_features), linear.bias is not None
    with torch.device("meta"):
        if kind == "nf4":
            q = Nf4Linear(*shape, bias, compress_statistics=True, quant_type="nf4")
        else:
            q = Int8Linear(*shape, bias, has_fp16_weights=False, threshold=0.0)
    if kind == "nf4":  # Params4bit quantizes as it moves to a device
        weight = bnb.nn.Params4bit(linear.weight.data, requires_grad=False, compress_statistics=True, quant_type="nf4")
        q.weight = weight.to(device)
    else:  # Int8Params only quantizes on a move from the CPU, so quantize here, as it would
        rows, scales, _ = bnb.functional.int8_vectorwise_quant(linear.weight.data.to(device, torch.float16))
        q.weight = bnb.nn.Int8Params(rows, requires_grad=False, has_fp16_weights=False)
        q.weight.CB, q.weight.SCB = rows, scales
    q.compute_dtype = compute_dtype
    if bias:
        q.bias = nn.Parameter(linear.bias.data.to(device, compute_dtype), requires_grad=False)
    return q


def quantize_blocks(transformer, kind, device, compute_dtype):
    """Replace every block linear by its `kind` version on `device`, then move the rest of the
    block there: a layer at a time, so the device never holds the unquantized base."""
    if kind == "fp8":
        fp8.require(device)  # the trainer asks before loading; the bench comes straight here
    for block in [*transformer.transformer_blocks, *transformer.single_transformer_blocks]:
        for name, module in list(block.named_modules()):
            if type(module) is nn.Linear:
                parent, _, attr = name.rpartition(".")
                q = _layer(kind, module, device, compute_dtype)
                setattr(block.get_submodule(parent) if parent else block, attr, q)
        block.to(device)
    return transformer


def quantized_layers(transformer):
    return sum(1 for m in transformer.modules() if isinstance(m, (Nf4Linear, Int8Linear, fp8.Fp8Linear)))
