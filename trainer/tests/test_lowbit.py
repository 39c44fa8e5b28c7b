"""Training on a quantized frozen base (NF4, int8, fp8) and checkpointing some blocks only: the paths the memory
plan chooses, run on the tiny model on a CPU. Compiled blocks are counted here and trained by
check.py's CPU mode (bench/gpu/test_check.py), together with NF4."""

import pytest
import torch

from conftest import cli_env, run_cli, train_spec
from kiln_trainer import blocks, lora, memory

PROMPT = "a photo of sks bands"


def fixed_eval_loss(transformer, tiny_dir, dataset_dir):
    from kiln_trainer.evaluate import fixed_batch_loss

    return fixed_batch_loss(transformer, tiny_dir, dataset_dir, "sks", 64, torch.device("cpu"), torch.float32)


def finite_and_falling(p, steps):
    losses = [e["loss"] for e in p.of("step")]
    assert len(losses) == steps and all(isinstance(x, float) and x == x for x in losses)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    return losses


@pytest.mark.parametrize("kind", ["nf4", "int8", "fp8"])
def test_lora_on_a_quantized_base_trains_and_loads_onto_the_full_base(tmp_path, tiny_dir, kind):
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import load_file

    spec = train_spec(tmp_path, steps=40, batch_size=4, quantize=kind, sample_prompts=[PROMPT])
    rc, p = run_cli("train", spec, tmp_path)
    assert rc == 0, p.stderr[-3000:]
    (started,) = p.of("started")
    assert started["memory_plan"]["quantize"] == kind and started["weight_rounding"] is None  # fp32 LoRA
    assert started["quantized_layers"] == 2 * 14 + 2 * 6  # every block linear of the tiny model's 2+2 blocks
    finite_and_falling(p, 40)
    assert sorted({e["step"] for e in p.of("sample")}) == [0, 40]  # samples ran on the quantized base

    weights = p.of("completed")[0]["weights_path"]
    full = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer")
    lora.add_lora(full, 16, 0)
    assert set(load_file(weights)) == set(lora.lora_state_dict(full, 16))  # the unquantized model's keys

    base = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer")
    before = fixed_eval_loss(base, tiny_dir, spec["dataset_dir"])
    base.load_lora_adapter(weights, prefix="transformer")
    after = fixed_eval_loss(base, tiny_dir, spec["dataset_dir"])
    assert after <= 0.8 * before, (before, after)


# The largest mean output error relative to nn.Linear's, over 30 seeds, on torch 2.11 and 2.13:
# 0.112 for nf4 (16 levels a weight), 0.0054 for int8, 0.046 for fp8 (whose input is cast too).
# Seed 0's 0.107 on torch 2.11 failed the 0.1 this test once held every format to.
OUTPUT_ERROR = {"nf4": 0.15, "int8": 0.01, "fp8": 0.07}


@pytest.mark.parametrize("kind", ["nf4", "int8", "fp8"])
def test_a_quantized_linear_returns_what_nn_linear_returns_under_autocast(kind):
    """CUDA autocast hands linears the fp32 output of layer norms; nn.Linear answers in bf16, and
    so must a quantized one, or FLUX's residual stream turns fp32 and every checkpointed block
    keeps twice the bytes the memory plan counts."""
    from kiln_trainer import quantize as lowbit

    torch.manual_seed(0)
    plain = torch.nn.Linear(128, 64).to(torch.bfloat16)
    quantized = lowbit._layer(kind, plain, torch.device("cpu"), torch.bfloat16)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(4, 128, dtype=dtype, requires_grad=True)
        with torch.autocast("cpu", torch.bfloat16):
            want, got = plain(x), quantized(x)
        assert got.dtype == want.dtype == torch.bfloat16
        got.float().sum().backward()
        assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()
        assert (got - want).abs().mean() < OUTPUT_ERROR[kind] * want.abs().mean()


def test_a_plan_that_does_not_fit_fails_before_loading(tmp_path):
    spec = train_spec(tmp_path, steps=5)
    rc, p = run_cli("train", spec, tmp_path, env=cli_env(KILN_GPU_MEMORY_GIB="0.1"))
    assert rc == 1
    (err,) = p.of("error")
    assert err["kind"] == "memory" and err["where"] == "spec"
    assert "does not fit" in err["message"] and "0.1 GiB card" in err["message"]
    assert not p.of("started")

    rc, p = run_cli("train", spec, tmp_path, env=cli_env(KILN_GPU_MEMORY_GIB="lots"))
    assert rc == 1 and "KILN_GPU_MEMORY_GIB must be a number" in p.of("error")[0]["message"]


def test_a_stated_memory_size_is_planned_for(tmp_path):
    spec = train_spec(tmp_path, steps=3, gradient_checkpointing="auto")
    rc, p = run_cli("train", spec, tmp_path, env=cli_env(KILN_GPU_MEMORY_GIB="8"))
    assert rc == 0, p.stderr[-3000:]
    plan = p.of("started")[0]["memory_plan"]
    assert plan["gpu_memory_gib"] == 8 and plan["feasible"] and plan["quantize"] is None
    assert plan["checkpointed_blocks"] == 0  # "auto": nothing to save on a model this small


def test_checkpointing_some_blocks_recomputes_only_those(tiny_dir):
    from diffusers import FluxTransformer2DModel

    from kiln_trainer.train import flow_loss

    tr = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer")
    params = lora.add_lora(tr, 4, 0)
    for p in params:  # a non-zero B so that every LoRA weight gets a gradient
        torch.nn.init.normal_(p, std=0.02)
    tr.train()
    calls = []
    for i, b in enumerate(blocks.blocks(tr)):
        b.register_forward_pre_hook(lambda m, a, i=i: calls.append(i))
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 16, 8, 8, generator=g), torch.randn(2, 16, 8, 8, generator=g)
    seq, pooled = torch.randn(2, 32, 64, generator=g), torch.randn(2, 64, generator=g)
    sigmas = torch.tensor([0.3, 0.7])
    grads = {}
    for n in (0, 2, 4):
        blocks.checkpoint_first(tr, n)
        calls.clear()
        tr.zero_grad(set_to_none=True)
        flow_loss(tr, x0, seq, pooled, noise, sigmas, 1.0).backward()
        assert [calls.count(i) for i in range(4)] == [2 if i < n else 1 for i in range(4)]
        grads[n] = [p.grad.clone() for p in params]
    for n in (2, 4):
        for a, b in zip(grads[0], grads[n], strict=True):
            torch.testing.assert_close(a, b)


def test_compiled_blocks_share_one_graph_per_kind(tiny_dir):
    """Regional compilation: one graph for all single blocks, not one for the first and one for the
    rest, and the compiled blocks compute what the eager ones do."""
    from diffusers import FluxTransformer2DModel

    from kiln_trainer.train import flow_loss

    tr = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer")
    for p in lora.add_lora(tr, 4, 0):
        torch.nn.init.normal_(p, std=0.02)
    tr.train()
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(1, 16, 8, 8, generator=g), torch.randn(1, 16, 8, 8, generator=g)
    seq, pooled, sigmas = torch.randn(1, 32, 64, generator=g), torch.randn(1, 64, generator=g), torch.tensor([0.4])
    eager = flow_loss(tr, x0, seq, pooled, noise, sigmas, 1.0)
    graphs = []

    def count(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    blocks.compile_each(tr, backend=count)
    for checkpointed in (0, 4):
        blocks.checkpoint_first(tr, checkpointed)
        loss = flow_loss(tr, x0, seq, pooled, noise, sigmas, 1.0)
        loss.backward()
        torch.testing.assert_close(loss, eager)
    with torch.no_grad():
        torch.testing.assert_close(flow_loss(tr, x0, seq, pooled, noise, sigmas, 1.0), eager)
    # training: the first double block (no input gradient), the other, every single block; sampling: one each
    assert len(graphs) == 3 + 2, [gm.code for gm in graphs]
    blocks.eager_each(tr)
    flow_loss(tr, x0, seq, pooled, noise, sigmas, 1.0)
    assert len(graphs) == 5 and not any(b._forward_pre_hooks for b in blocks.blocks(tr))


def test_planner_model_inputs_from_the_tiny_folder(tiny_dir):
    inputs = memory.model_inputs(tiny_dir, 16)
    assert inputs["text_tokens"] == 32 and inputs["model"]["blocks"] == 4
    assert inputs["encoder_params"] > 0 and inputs["vae_params"] > 0


def test_full_finetune_keeps_bf16_weights_where_fp32_ones_do_not_fit(tmp_path, tiny_dir, monkeypatch):
    from safetensors.torch import load_file

    from conftest import write_json
    from kiln_trainer import spec as specmod

    spec = train_spec(tmp_path, steps=20, training_type="FULL", dtype="bf16", learning_rate=1e-4, optimizer="adamw8bit")
    loaded = specmod.load(write_json(tmp_path / "s.json", spec), "train")

    def planned(gib):
        monkeypatch.setenv("KILN_GPU_MEMORY_GIB", str(gib))
        return memory.for_run(loaded, tiny_dir, torch.device("cpu"), torch.bfloat16)

    # the smallest card (in MiB steps) on which the run fits: there only bf16 weights do
    gib = next(m / 1024 for m in range(256, 2048) if planned(m / 1024)["feasible"])
    assert planned(gib)["trainable_dtype"] == "bf16"
    assert planned(2 * gib)["trainable_dtype"] == "fp32"

    rc, p = run_cli("train", spec, tmp_path, env=cli_env(KILN_GPU_MEMORY_GIB=str(gib)))
    assert rc == 0, p.stderr[-3000:]
    started = p.of("started")[0]
    plan = started["memory_plan"]
    assert plan["trainable_dtype"] == "bf16" and "bf16 trained weights" in plan["reason"]
    assert started["weight_rounding"] == "stochastic"  # or the 1e-4 updates would mostly round away
    losses = [e["loss"] for e in p.of("step")]
    assert len(losses) == 20 and all(x == x for x in losses)
    saved = load_file(f"{p.of('completed')[0]['weights_path']}/diffusion_pytorch_model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.bfloat16}
