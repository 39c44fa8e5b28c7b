"""A frozen base stored in fp8 whose block linears multiply in fp8: both matmuls a frozen layer
does in training, the forward and the input's gradient, run on the fp8 tensor cores of Ada,
Hopper and Blackwell through torch._scaled_mm. A CPU, which is what the tests use, computes the
same product from the same bytes in fp32 (`scaled_mm`).

Each weight is cast once, at load, to one e4m3 byte with one scale for the layer: half a bf16
base. torchao's float8 training, tried first, keeps the bf16 weight and casts it again on every
forward; on an H200 it measured 2.2x slower than bf16 and 13 GiB larger. One scale per layer
rather than per row lets the backward use the same bytes, transposed; a scale per row would need
a second copy. Inputs take e4m3 and output gradients e5m2 (gradients need range more than
precision), each scaled per call by its own largest magnitude.

A non-finite input makes its scale, and so the whole output, non-finite: the step's guard sees
it, rather than fp8 saturating it into a plausible number."""

import torch
from torch import nn

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


def to_fp8(t, dtype):
    """t as (q, scale) with q in fp8 and t ≈ q * scale, one fp32 scale for the whole tensor. The
    division runs in t's dtype; the scale is rounded to that dtype first, so it is the scale the
    product uses."""
    top = torch.finfo(dtype).max
    scale = (t.abs().amax().float() / top).clamp(min=1e-30).to(t.dtype)
    return (t / scale).clamp(-top, top).to(dtype), scale.float()


def scaled_mm(a, b, scale_a, scale_b, out_dtype):
    """torch._scaled_mm on a GPU. On a CPU the fp8 bytes are widened to fp32, where every e4m3 and
    e5m2 value is exact, and multiplied with fp32 accumulation as _scaled_mm does: oneDNN's own fp8
    matmul is a reference loop on CPUs without fp8 instructions (AVX-512 with AMX included), 10 s
    for one 1024x256x768 product, which made a 40-step tiny run take half an hour."""
    if a.is_cuda:
        return torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=out_dtype)
    return ((a.float() @ b.float()) * (scale_a * scale_b)).to(out_dtype)


class Unsupported(Exception):
    pass


def require(device):
    """Raise Unsupported where fp8 matmuls cannot run."""
    if device.type != "cuda" or torch.cuda.get_device_capability(device) >= (8, 9):
        return
    cc = ".".join(map(str, torch.cuda.get_device_capability(device)))
    raise Unsupported(
        f"an fp8 base needs a GPU of compute capability 8.9 or newer (Ada, Hopper, Blackwell); "
        f"{torch.cuda.get_device_name(device)} is {cc}: quantize 'int8' or 'nf4' runs there"
    )


class _Fp8Matmul(torch.autograd.Function):
    """x W^T with x cast to fp8 on the way in, and the input's gradient g W with g cast so. The
    frozen weight needs no gradient, so nothing of x is kept for the backward."""

    @staticmethod
    def forward(ctx, x, weight, scale):
        q, q_scale = to_fp8(x.reshape(-1, x.shape[-1]), E4M3)
        out = scaled_mm(q, weight.t(), q_scale, scale, x.dtype)
        ctx.save_for_backward(weight, scale)
        return out.reshape(*x.shape[:-1], -1)

    @staticmethod
    def backward(ctx, grad):  # only called when x wants a gradient: nothing else here does
        weight, scale = ctx.saved_tensors
        g, g_scale = to_fp8(grad.reshape(-1, grad.shape[-1]), E5M2)
        # _scaled_mm takes its right operand column-major: W's bytes transposed, one layer at a time
        w = weight.t().contiguous().t()
        dx = scaled_mm(g, w, g_scale, scale, grad.dtype)
        return dx.reshape(*grad.shape[:-1], -1), None, None


class Fp8Linear(nn.Linear):
    """A frozen linear with its weight in e4m3 and one scale. Both are stored as integer views
    (uint8, int32): PEFT casts a new adapter to its base layer's weight dtype when that is a float
    type, and module.to(dtype) casts every float tensor; neither may touch these bytes."""

    def __init__(self, linear, device, compute_dtype):
        if linear.in_features % 16 or linear.out_features % 16:  # _scaled_mm's own rule on a GPU, kept on a CPU
            raise Unsupported(
                f"fp8 matmuls need layer sizes divisible by 16, and this base has a "
                f"{linear.in_features}x{linear.out_features} block linear: quantize 'int8' or 'nf4' runs it"
            )
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = to_fp8(linear.weight.data.to(device, torch.float32), E4M3)
        self.weight = nn.Parameter(q.view(torch.uint8), requires_grad=False)
        self.register_buffer("scale_bits", scale.view(torch.int32))
        self.bias = None
        if linear.bias is not None:
            self.bias = nn.Parameter(linear.bias.data.to(device, compute_dtype), requires_grad=False)
        self.compute_dtype = compute_dtype

    def forward(self, x):
        # In the compute dtype whatever autocast made of x (its layer norms answer in fp32), so the
        # residual stream stays in it, as with nn.Linear under autocast.
        out = _Fp8Matmul.apply(x.to(self.compute_dtype), self.weight.view(E4M3), self.scale_bits.view(torch.float32))
        return out if self.bias is None else out + self.bias

    def dequantized(self):
        return self.weight.view(E4M3).to(torch.float32) * self.scale_bits.view(torch.float32)
