"""flat_lora: LoRA weights and gradients as views of one buffer each, so that the optimizer, the
clip and the non-finite check run on one tensor. It must train exactly as the per-tensor LoRA."""

import json

import pytest
import torch

from conftest import run_cli, train_spec
from kiln_trainer import flat, lora, numerics, spec as specmod, train


def lora_model(tiny_dir):
    from diffusers import FluxTransformer2DModel

    tr = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer")
    params = lora.add_lora(tr, 4, 0)
    for p in params:  # a non-zero B, so that every LoRA weight gets a gradient
        torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(p.numel()))
    return tr.train(), params


@pytest.mark.parametrize("optimizer", ["adamw", "adamw8bit"])
def test_a_flat_lora_trains_as_the_per_tensor_one(tiny_dir, optimizer):
    g = torch.Generator().manual_seed(0)
    x0, seq, pooled = torch.randn(2, 16, 8, 8, generator=g), torch.randn(2, 32, 64, generator=g), torch.randn(2, 64)
    runs = {}
    for flatten in (False, True):
        tr, params = lora_model(tiny_dir)
        start = [p.detach().clone() for p in params]
        if flatten:
            params = [flat.flatten(params)]
            tr.to("cpu")  # as the sampling pipeline does: the weights stay views of the buffer
            buffer = params[0].untyped_storage().data_ptr()
            assert all(p.untyped_storage().data_ptr() == buffer for p in tr.parameters() if p.requires_grad)
        opt, _ = train.make_optimizer(optimizer, params, 1e-3)
        guard = numerics.Guard("a test", lambda *a, **k: None)
        grads = []
        for step in range(3):
            noise, sigmas = train.step_noise(0, step, 0, x0.shape)
            loss = train.forward_backward(tr, x0, seq, pooled, noise, sigmas, 1.0, torch.float32)
            grads.append(torch.cat([p.grad.reshape(-1) for p in tr.parameters() if p.requires_grad]))
            assert train.optimizer_step(params, opt, guard, step + 1, loss)
        runs[flatten] = grads, [p.detach().clone() for p in tr.parameters() if p.requires_grad]
    (grads, weights), (flat_grads, flat_weights) = runs[False], runs[True]
    torch.testing.assert_close(flat_grads[0], grads[0], rtol=0, atol=0)  # the same backward, into the views
    # adamw is elementwise: the same update, so the same later gradients (zeroed in place between
    # steps, not accumulated). adamw8bit's blocks of 256 now span tensors, and the tiny model's
    # tensors under 4096 weights, whose state bitsandbytes keeps in 32 bits, join the 8-bit buffer
    if optimizer == "adamw":
        for a, b in zip(flat_grads, grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
        for a, b in zip(flat_weights, weights, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    moved, flat_moved = (
        torch.cat([(w - w0).reshape(-1) for w, w0 in zip(ws, start, strict=True)]) for ws in (weights, flat_weights)
    )
    assert (flat_moved - moved).norm() < 0.05 * moved.norm()


def test_the_trainer_trains_a_flat_lora_and_a_resume_must_match_it(tmp_path):
    spec = train_spec(tmp_path, steps=40, batch_size=4, optimizer="adamw8bit", flat_lora=True, save_every=20)
    rc, p = run_cli("train", spec, tmp_path)
    assert rc == 0, p.stderr[-3000:]
    (started,) = p.of("started")
    assert started["flat_lora"] and started["optimizer"] == "adamw8bit"
    losses = [e["loss"] for e in p.of("step")]
    assert len(losses) == 40 and sum(losses[-5:]) < 0.5 * sum(losses[:5]), losses
    # a checkpoint of the flat run resumed without flat_lora: a clear error, not a silent restart
    resumed = dict(spec, steps=60, flat_lora=False)
    rc, q = run_cli("train", resumed, tmp_path, name="resumed.json")
    (err,) = q.of("error")
    assert rc == 1 and "optimizer state for other parameters" in err["message"] and "flat_lora" in err["message"]


def test_flat_lora_is_for_lora_only(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(dict(train_spec(tmp_path), training_type="FULL", flat_lora=True)))
    with pytest.raises(specmod.SpecError, match="flat_lora"):
        specmod.load(str(path), "train")


def test_weights_of_two_dtypes_are_not_flattened():
    mixed = [torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4, dtype=torch.bfloat16))]
    with pytest.raises(ValueError, match="one dtype on one device"):
        flat.flatten(mixed)
