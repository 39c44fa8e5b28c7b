"""The numerics rules the first GPU run asked for (gpu-findings.md), checked on a CPU: bf16
trains, non-finite steps are skipped or fail the run loudly, cuDNN attention stays off, and
adamw8bit is the real 8-bit optimizer."""

import gc
import math
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from conftest import cli_env, run_cli, train_spec


def mean(xs):
    return sum(xs) / len(xs)


@pytest.fixture(scope="module")
def bf16_run_with_a_poisoned_step(tmp_path_factory):
    """A bf16 run (the dtype whose overflows the skipping is for) with step 4's gradients
    poisoned: one run read by the test that bf16 trains on a CPU and the test that a lone
    non-finite step is skipped. 40 steps: the last ten losses average about 0.74 of the first
    ten here, well under the 0.9 that separates training from noise."""
    tmp = tmp_path_factory.mktemp("bf16")
    spec = train_spec(tmp, steps=40, save_every=10, learning_rate=3e-3, optimizer="adamw", dtype="bf16")
    return spec, run_cli("train", spec, tmp, env=cli_env(KILN_FAULT_NAN_GRAD_STEPS="4"))


def test_bf16_on_cpu_trains(bf16_run_with_a_poisoned_step):
    _, (rc, p) = bf16_run_with_a_poisoned_step
    assert rc == 0, p.stderr[-3000:]
    assert p.of("started")[0]["dtype"] == "bf16"
    losses = [e["loss"] for e in p.of("step")]
    assert len(losses) == 40 and all(x is not None and math.isfinite(x) for x in losses)
    assert mean(losses[-10:]) <= 0.9 * mean(losses[:10]), (mean(losses[:10]), mean(losses[-10:]))
    assert math.isfinite(p.of("completed")[0]["final_loss"])


def test_bf16_model_runs_without_autocast(tiny_dir):
    """Inputs are cast at the call, so a bf16 base with fp32 LoRA needs no autocast."""
    from diffusers import FluxTransformer2DModel

    from kiln_trainer import lora, train

    tr = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer", dtype=torch.bfloat16)
    params = lora.add_lora(tr, 4, 0)
    assert {p.dtype for p in params} == {torch.float32}
    x0, noise = torch.randn(1, 16, 8, 8), torch.randn(1, 16, 8, 8)
    seq, pooled = torch.randn(1, 32, tr.config.joint_attention_dim), torch.randn(1, tr.config.pooled_projection_dim)
    loss = train.flow_loss(tr, x0, seq, pooled, noise, torch.tensor([0.5]), 1.0)
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in params)


def test_fp16_is_refused_for_training(tmp_path):
    rc, p = run_cli("train", train_spec(tmp_path, dtype="fp16"), tmp_path)
    assert rc == 2
    (err,) = p.of("error")
    assert err["where"] == "spec.dtype" and "fp16" in err["message"]


def fault_run(tmp_path, steps_to_poison, **kw):
    spec = train_spec(tmp_path, **kw)
    return spec, run_cli("train", spec, tmp_path, env=cli_env(KILN_FAULT_NAN_GRAD_STEPS=steps_to_poison))


def assert_all_checkpoints_finite(work_dir):
    ck = os.path.join(work_dir, "checkpoints")
    for name in os.listdir(ck):
        for k, v in load_file(os.path.join(ck, name, "trainable.safetensors")).items():
            assert torch.isfinite(v).all(), f"{name}: {k}"


def test_three_non_finite_steps_in_a_row_fail_the_run(tmp_path):
    spec, (rc, p) = fault_run(tmp_path, "3,4,5", steps=10, save_every=2)
    assert rc == 1, p.stderr[-3000:]
    assert [e["step"] for e in p.of("skipped_step")] == [3, 4]
    assert all("non-finite" in e["message"] for e in p.of("skipped_step"))
    (err,) = p.of("error")
    assert err["kind"] == "numerics"
    for words in ("non-finite", "step 5", "3 steps in a row", "dtype fp32", "attention [flash", "torch "):
        assert words in err["message"], (words, err["message"])
    assert not p.of("completed")
    assert not os.path.exists(os.path.join(spec["work_dir"], "output", "lora.safetensors"))
    assert [e["step"] for e in p.of("checkpoint")] == [2, 4]
    assert_all_checkpoints_finite(spec["work_dir"])


def test_one_non_finite_step_is_skipped_and_the_run_completes(bf16_run_with_a_poisoned_step):
    spec, (rc, p) = bf16_run_with_a_poisoned_step
    assert rc == 0, p.stderr[-3000:]
    (skip,) = p.of("skipped_step")
    assert skip["step"] == 4 and "non-finite gradient norm" in skip["message"]
    (done,) = p.of("completed")
    assert math.isfinite(done["final_loss"]) and done["skipped_steps"] == 1
    assert [e["step"] for e in p.of("step")] == list(range(1, 41))
    assert all(torch.isfinite(v).all() for v in load_file(done["weights_path"]).values())
    assert [e["step"] for e in p.of("checkpoint")] == [10, 20, 30, 40]
    assert_all_checkpoints_finite(spec["work_dir"])


def test_a_non_finite_first_step_fails_at_once(tmp_path):
    _, (rc, p) = fault_run(tmp_path, "1", steps=5)
    assert rc == 1 and not p.of("skipped_step") and not p.of("completed")
    assert "first step" in p.of("error")[0]["message"]


def test_a_non_finite_checkpoint_is_never_resumed(tmp_path, trained_lora):
    from safetensors.torch import save_file

    # the last checkpoint of the shared run, poisoned, in a task folder of its own
    shared, _ = trained_lora
    spec = train_spec(tmp_path, steps=62)
    src = os.path.join(shared["work_dir"], "checkpoints", "step_000060")
    shutil.copytree(src, os.path.join(spec["work_dir"], "checkpoints", "step_000060"))
    path = os.path.join(spec["work_dir"], "checkpoints", "step_000060", "trainable.safetensors")
    save_file({k: torch.full_like(v, float("nan")) for k, v in load_file(path).items()}, path)
    rc, p = run_cli("train", spec, tmp_path)
    assert rc == 1
    (err,) = p.of("error")
    assert err["kind"] == "numerics" and "non-finite" in err["message"] and "step_000060" in err["message"]


def test_a_skipped_update_leaves_weights_and_optimizer_state_unchanged():
    from kiln_trainer import numerics, train

    w = torch.nn.Parameter(torch.randn(8, 8))
    opt = torch.optim.AdamW([w], lr=0.1)
    events = []
    guard = numerics.Guard("ctx", lambda type_, **fields: events.append((type_, fields)))
    for step in (1, 2):
        (w.sum() ** 2).backward()
        assert train.optimizer_step([w], opt, guard, step, 1.0)
    before, state = w.detach().clone(), {k: v.clone() for k, v in opt.state[w].items()}
    (w.sum() ** 2).backward()
    assert not train.optimizer_step([w], opt, guard, 3, 1.0, poison=True)
    assert torch.equal(w.detach(), before) and w.grad is None
    assert all(torch.equal(opt.state[w][k], v) for k, v in state.items())
    assert [(t, f["step"]) for t, f in events] == [("skipped_step", 3)]
    assert "non-finite gradient norm" in events[0][1]["message"]


def test_guard_fails_once_too_many_steps_were_skipped():
    from kiln_trainer import numerics

    guard = numerics.Guard("dtype bf16", lambda *a, **k: None)
    nan = float("nan")
    for step in range(1, 25):  # one skip in 24 steps is under 5%
        guard.allows(step, nan if step == 10 else 0.5, torch.tensor(1.0))
    with pytest.raises(numerics.NonFinite, match=r"non-finite loss \(nan\) at step 25.*2 of 25 steps.*dtype bf16"):
        guard.allows(25, nan, torch.tensor(1.0))


def test_cudnn_attention_stays_off_after_garbage_collection():
    from kiln_trainer import numerics

    torch.backends.cuda.enable_cudnn_sdp(True)
    backends = numerics.configure_attention()
    gc.collect()
    assert not torch.backends.cuda.cudnn_sdp_enabled()
    assert backends == numerics.attention_backends() == ["flash", "efficient", "math"]


def test_adamw8bit_is_the_real_8bit_optimizer():
    import bitsandbytes as bnb

    from kiln_trainer import train

    big, small = torch.nn.Parameter(torch.randn(64, 128)), torch.nn.Parameter(torch.randn(4, 4))
    opt, name = train.make_optimizer("adamw8bit", [big, small], 1e-3)
    assert name == "adamw8bit" and isinstance(opt, bnb.optim.AdamW8bit)
    (big.sum() ** 2 + small.sum()).backward()
    before = big.detach().clone()
    opt.step()
    assert not torch.equal(big.detach(), before)
    # blockwise 8-bit moments for tensors of 4096+ elements, as on FLUX's LoRA matrices
    assert opt.state[big]["state1"].dtype == torch.uint8 and opt.state[big]["state2"].dtype == torch.uint8
