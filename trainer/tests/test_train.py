import os
import resource
import shutil
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import Proc, run_cli, train_spec, write_json


def fixed_eval_loss(transformer, tiny_dir, dataset_dir):
    from kiln_trainer.evaluate import fixed_batch_loss

    return fixed_batch_loss(transformer, tiny_dir, dataset_dir, "sks", 64, torch.device("cpu"), torch.float32)


@pytest.mark.slow
def test_lora_learns(tmp_path, tiny_dir):
    from diffusers import FluxTransformer2DModel

    # Checkpointing only recomputes activations (same losses, same drop); off, 200 steps cost less.
    spec = train_spec(tmp_path, steps=200, learning_rate=3e-3, rank=16, batch_size=4, gradient_checkpointing=False)
    t0 = time.time()
    rc, p = run_cli("train", spec, tmp_path)
    wall = time.time() - t0
    assert rc == 0, p.stderr[-3000:]
    maxrss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\n200-step run: wall {wall:.1f}s, child maxrss {maxrss_mb:.0f} MB")
    (done,) = p.of("completed")
    assert done["steps"] == 200 and done["weights_path"].endswith("output/lora.safetensors")
    steps = p.of("step")
    assert [e["step"] for e in steps] == list(range(1, 201))
    assert all(e["total"] == 200 and e["lr"] > 0 and e["seconds_per_step"] >= 0 for e in steps)

    tr = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer")
    before = fixed_eval_loss(tr, tiny_dir, spec["dataset_dir"])
    tr.load_lora_adapter(done["weights_path"], prefix="transformer")
    after = fixed_eval_loss(tr, tiny_dir, spec["dataset_dir"])
    print(f"fixed-batch loss {before:.4f} -> {after:.4f} ({(1 - after / before) * 100:.1f}% lower)")
    assert after <= 0.7 * before


def test_checkpoint_rotation(trained_lora, tmp_path):
    spec, p = trained_lora
    assert p.of("started")[0]["optimizer"] == "adamw8bit"
    # every save_every steps, and the last step whatever it is; only the newest two are kept
    assert [e["step"] for e in p.of("checkpoint")] == [19, 38, 57, 60]
    ck = os.path.join(spec["work_dir"], "checkpoints")
    assert sorted(os.listdir(ck)) == ["step_000057", "step_000060"]
    for e in p.of("checkpoint"):
        assert e["path"] == os.path.join(ck, f"step_{e['step']:06d}")
    assert sorted(os.listdir(os.path.join(ck, "step_000060"))) == ["spec.json", "state.pt", "trainable.safetensors"]
    leftovers = [
        os.path.join(d, f) for d, _, fs in os.walk(spec["work_dir"]) for f in fs + _ if ".tmp" in f or f.startswith(".")
    ]
    assert not leftovers
    state = torch.load(os.path.join(ck, "step_000060", "state.pt"), weights_only=False)
    assert state["step"] == 60 and set(state["rng"]) == {"torch", "numpy", "python", "cuda"}
    assert set(state["data"]) == {"epoch", "batch_in_epoch"}

    # running again with resume=true and nothing left to do just re-exports
    rc, p2 = run_cli("train", spec, tmp_path)
    assert rc == 0
    assert p2.of("started")[0]["start_step"] == 60 and not p2.of("step")
    assert p2.of("completed")[0]["final_loss"] == p.of("completed")[0]["final_loss"]


def test_resume_is_exact(trained_lora, tmp_path):
    full, a = trained_lora
    wa = load_file(a.of("completed")[0]["weights_path"])
    # a second task folder that only holds the step-57 checkpoint of that same 60-step run
    resumed = dict(full, work_dir=str(tmp_path / "resumed"))
    os.makedirs(os.path.join(resumed["work_dir"], "checkpoints"))
    shutil.copytree(
        os.path.join(full["work_dir"], "checkpoints", "step_000057"),
        os.path.join(resumed["work_dir"], "checkpoints", "step_000057"),
    )
    state = torch.load(os.path.join(resumed["work_dir"], "checkpoints", "step_000057", "state.pt"), weights_only=False)
    assert state["data"]["batch_in_epoch"] > 0
    rc, b = run_cli("train", resumed, tmp_path, name="resumed.json")
    assert rc == 0, b.stderr[-3000:]
    assert b.of("started")[0]["start_step"] == 57
    assert [e["step"] for e in b.of("step")] == list(range(58, 61))
    sa = {e["step"]: e for e in a.of("step")}
    for e in b.of("step"):
        assert abs(e["loss"] - sa[e["step"]]["loss"]) < 1e-5 and e["lr"] == sa[e["step"]]["lr"]
    wb = load_file(b.of("completed")[0]["weights_path"])
    assert set(wa) == set(wb)
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k


def test_a_run_continues_from_an_exported_lora(trained_lora, tmp_path):
    full, a = trained_lora
    weights = a.of("completed")[0]["weights_path"]
    # lr so small that one step leaves every weight where the exported LoRA put it
    spec = dict(full, work_dir=str(tmp_path / "continued"), steps=1, learning_rate=1e-9, optimizer="adamw")
    spec.update(init_lora=weights, sample_prompts=[], gradient_accumulation=1)
    rc, b = run_cli("train", spec, tmp_path, name="continued.json")
    assert rc == 0, b.stderr[-3000:]
    assert any(e["message"] == f"continuing from the LoRA {weights}" for e in b.of("log"))
    wa, wb = load_file(weights), load_file(b.of("completed")[0]["weights_path"])
    assert set(wa) == set(wb)
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k
    # its first loss is the trained LoRA's, well under what the base model starts from
    assert b.of("step")[0]["loss"] < 0.5 * a.of("step")[0]["loss"]  # 0.16 against 3.26 when written

    rc, c = run_cli("train", dict(spec, work_dir=str(tmp_path / "rank8"), rank=8), tmp_path, name="rank8.json")
    assert rc != 0
    (err,) = c.of("error")
    assert err["where"] == "spec.init_lora" and f"{weights} has rank 16; this run trains rank 8" in err["message"]
    rc, d = run_cli("train", dict(spec, work_dir=str(tmp_path / "full"), training_type="FULL"), tmp_path, name="f.json")
    assert rc == 2 and d.of("error")[0]["where"] == "spec.init_lora"


def test_sigterm_cancels_cleanly(tmp_path):
    spec = train_spec(tmp_path, steps=100000)
    p = Proc("train", write_json(tmp_path / "spec.json", spec))
    assert p.wait_for(lambda e: e["type"] == "step" and e["step"] >= 3), p.stderr
    t = time.time()
    p.p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=30)
    assert rc == 0 and time.time() - t < 10, p.stderr[-2000:]
    (c,) = p.of("cancelled")
    assert c["step"] >= 3 and not p.of("completed")
    assert p.of("checkpoint")[-1]["step"] == c["step"]  # progress is kept for a resume
    assert os.path.isdir(os.path.join(spec["work_dir"], "checkpoints", f"step_{c['step']:06d}"))


def test_stdin_close_stops(tmp_path):
    spec = train_spec(tmp_path, steps=100000)
    p = Proc("train", write_json(tmp_path / "spec.json", spec), stdin=subprocess.PIPE)
    assert p.wait_for(lambda e: e["type"] == "step" and e["step"] >= 2), p.stderr
    t = time.time()
    p.p.stdin.close()
    rc = p.wait(timeout=30)
    assert time.time() - t < 5, "did not stop within 5 s of stdin EOF"
    assert rc == 0 and p.of("cancelled")


def test_stdin_socket_close_stops(tmp_path):
    """Node's child_process hands the child a socketpair, not a FIFO, as stdin."""
    import socket

    spec = train_spec(tmp_path, steps=100000)
    ours, theirs = socket.socketpair()
    p = Proc("train", write_json(tmp_path / "spec.json", spec), stdin=theirs.fileno())
    theirs.close()
    assert p.wait_for(lambda e: e["type"] == "step" and e["step"] >= 2), p.stderr
    t = time.time()
    ours.close()
    rc = p.wait(timeout=30)
    assert time.time() - t < 5 and rc == 0 and p.of("cancelled")


def test_sigint_exits_at_once(tmp_path):
    spec = train_spec(tmp_path, steps=100000)
    p = Proc("train", write_json(tmp_path / "spec.json", spec))
    assert p.wait_for(lambda e: e["type"] == "step"), p.stderr
    p.p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=10)
    assert rc != 0 and not p.of("cancelled") and not p.of("completed")


@pytest.fixture(scope="module")
def odd_sizes_full_run(tmp_path_factory):
    """A full fine-tune over images of odd sizes at two base resolutions: one run that the
    bucket test and the full fine-tune test each read their facts from. On Adafactor, the
    optimizer that suits a full fine-tune (no second moment per weight); adamw8bit trains in
    `trained_lora`, adamw in most other runs."""
    import numpy as np
    from PIL import Image

    tmp = tmp_path_factory.mktemp("odd_sizes")
    spec = train_spec(
        tmp,
        steps=4,
        batch_size=2,
        resolution=[64, 96],
        training_type="FULL",
        learning_rate=1e-3,
        optimizer="adafactor",
    )
    d = spec["dataset_dir"]
    for i, (w, h) in enumerate([(120, 60), (60, 120), (90, 70)]):
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(os.path.join(d, f"odd{i}.jpg"))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(os.path.join(d, "._hidden.png"))
    rc, p = run_cli("train", spec, tmp)
    assert rc == 0, p.stderr[-3000:]
    return spec, p


def test_buckets_multires_and_cache(odd_sizes_full_run, tmp_path):
    spec, p = odd_sizes_full_run
    cache = sorted(os.listdir(os.path.join(spec["work_dir"], "cache")))
    assert [c.split("-")[0] for c in cache] == ["latents", "text"]
    latents = torch.load(os.path.join(spec["work_dir"], "cache", cache[0]))
    # every image at 64; at 96 only the odd sizes, which their buckets enlarge at most 1.25x
    assert sorted(i for b, _, i in latents if b[0] * b[1] > 80 * 80) == [4, 5, 6]
    assert len(latents) == 7 + 3
    assert p.stderr.count("trains at 64 px only: 96 px would enlarge it 1.50x") == 4  # the 64x64 bands
    (started,) = p.of("started")
    assert (started["images"], started["images_per_resolution"]) == (7, {"64": 7, "96": 3})
    buckets = {b for b, _, _ in latents}
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in buckets) and len(buckets) >= 5
    for (w, h), lat, _ in latents:
        assert lat.shape == (16, h // 8, w // 8)

    # a second run (fresh, resume off) reuses the caches: no encoder is loaded
    rc, p2 = run_cli("train", dict(spec, resume=False), tmp_path, name="again.json")
    assert rc == 0
    assert "latents cached, text cached" in p2.stderr
    assert [e["loss"] for e in p2.of("step")] == [e["loss"] for e in p.of("step")]


def test_full_finetune_with_adafactor(odd_sizes_full_run, tiny_dir):
    from diffusers import FluxTransformer2DModel

    spec, p = odd_sizes_full_run
    (started,) = p.of("started")
    assert started["optimizer"] == "adafactor" and len(p.of("step")) == 4
    base = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer")
    assert started["trainable_parameters"] == sum(x.numel() for x in base.parameters())
    out = p.of("completed")[0]["weights_path"]
    assert out == os.path.join(spec["work_dir"], "output", "transformer")
    tuned = FluxTransformer2DModel.from_pretrained(out)
    sb, st = base.state_dict(), tuned.state_dict()
    assert set(sb) == set(st)
    assert any(not torch.equal(sb[k], st[k]) for k in sb)
