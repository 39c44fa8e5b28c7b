"""check.py in its CPU mode (part of `make test`), and the published configs it writes at full size."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "trainer")]


def test_tiny_check_on_cpu_runs_every_section(tmp_path):
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, str(HERE / "check.py"), "--tiny", "--device", "cpu", "--out", str(out), "--profile"],
        capture_output=True,
        text=True,
        timeout=3600,  # a hang guard; each section has its own (check.TINY_CAP)
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    report = json.loads((out / "check.json").read_text())
    assert p.returncode == 0, p.stdout + p.stderr + json.dumps(report, indent=1)
    assert report["device"]["type"] == "cpu" and report["versions"]["bitsandbytes"]
    s = report["sections"]
    assert list(s) == ["tiny_train", "pipeline_train", "time_to_lora", "generate", "step_bench", "speed", "converge"]
    assert all(r["status"] == "ok" for r in s.values())
    assert s["tiny_train"]["eval_drop"] >= 0.30 and s["tiny_train"]["all_finite"]
    assert s["tiny_train"]["base_draws_prompt"], s["tiny_train"]["base_sample_middle"]
    assert s["tiny_train"]["optimizer"] == "adamw8bit" and "cudnn" not in s["tiny_train"]["attention"]
    pt = s["pipeline_train"]
    # samples: the base model's before the first step, then the last step's
    assert pt["checkpoints"] == [20, 40] and len(pt["sample_seconds"]) == 2 and pt["s_per_step"] > 0
    assert pt["optimizer"] == "adamw8bit" and pt["load_seconds"] > 0
    assert s["generate"]["lora_from"] == "pipeline_train" and s["generate"]["pixel_std"] > 0
    kinds = [(r["step"], r["gradient_checkpointing"]) for r in s["step_bench"]["rows"]]
    assert kinds == [("product", False), ("product", True), ("idealised", False), ("idealised", True)]
    assert all(r["sec_per_step"] > 0 and r["loss_finite"] for r in s["step_bench"]["rows"])
    rows = {(r["plan"], r["resolution"]): r for r in s["speed"]["rows"]}
    assert len(rows) == 12 and all(r["status"] == "ok" and r["sec_per_step"] > 0 for r in rows.values())
    assert all(r["stream_dtype"] == "float32" for r in rows.values())  # the tiny model's dtype, quantized or not
    for (name, res), r in rows.items():  # one more step of each row, profiled: where its time goes
        profile = out / r["profile"]["file"]
        assert profile.name == f"profile-{name}-{res}.txt" and "aten::mm" in profile.read_text()
    for res in (64,):  # recomputing, or compiling, changes no loss; a quantized base only a little
        assert rows["checkpointed", res]["loss_gap"] == rows["selective@40", res]["loss_gap"] == 0
        assert rows["compiled", res]["compiled"] and rows["compiled", res]["loss_gap"] < 1e-5
        assert rows["flat", res]["flat_lora"] and rows["flat", res]["loss_gap"] < 0.01  # 8-bit blocks span tensors
        assert rows["plan@24", res]["quantize"] == "int8" and rows["plan@12", res]["quantize"] == "nf4"
        assert 0 < rows["plan@12", res]["loss_gap"] < 0.01
        assert rows["fp8", res]["quantize"] == "fp8" and 0 < rows["fp8", res]["loss_gap"] < 0.01
        assert rows["compiled-fp8", res]["compiled"] and rows["compiled-fp8", res]["quantize"] == "fp8"
        assert abs(rows["compiled-fp8", res]["loss_gap"] - rows["fp8", res]["loss_gap"]) < 1e-5
        assert rows["int8", res]["quantize"] == "int8" and rows["nf4", res]["checkpointed_blocks"] == 2
        full = rows["full@80", res]  # every block checkpointed, every weight trained: not plain's curve
        assert full["training_type"] == "FULL" and full["quantize"] is None and full["checkpointed_blocks"] == 2
        assert full["loss_finite"] and "loss_gap" not in full
    conv = s["converge"]
    assert [r["plan"] for r in conv["rows"]] == ["plain", "compiled", "flat", "fp8", "nf4", "int8"]
    for r in conv["rows"]:
        assert r["status"] == "ok" and len(r["losses"]) == conv["steps"] == 20 and r["loss_finite"]
        assert r["checkpointed_blocks"] == 0 and r["matches_plain"], r  # the tiny model moves little in 20 steps
    assert conv["rows"][1]["compiled"] and conv["rows"][1]["mean_abs_gap"] < 1e-5
    ttl = s["time_to_lora"]
    assert ttl["steps"] == 20 and ttl["s_per_step"] > 0 and ttl["start_seconds"] > 0
    assert ttl["extrapolated_seconds"] > ttl["measured_wall_seconds"] - ttl["start_seconds"]
    for name in s:
        assert (out / f"{name}.log").is_file()
    assert "step_bench" in p.stdout and "s/step" in p.stdout  # the table


@pytest.mark.parametrize("flags", [["--compile", "--quantize", "nf4"], ["--quantize", "int8"]])
def test_tiny_train_with_compile_and_quantize(tmp_path, flags):
    out = tmp_path / "out"
    cmd = [sys.executable, str(HERE / "check.py"), "--tiny", "--device", "cpu", "--out", str(out)]
    p = subprocess.run(
        [*cmd, "--sections", "tiny_train", *flags],
        capture_output=True,
        text=True,
        timeout=1500,  # a hang guard: check.TINY_CAP and the process around it
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    t = json.loads((out / "check.json").read_text())["sections"]["tiny_train"]
    assert p.returncode == 0 and t["status"] == "ok", p.stdout + p.stderr
    assert t["quantize"] == flags[-1] and t["compiled"] == ("--compile" in flags)
    # finite and falling, and the LoRA from the quantized base works on the unquantized one
    assert t["all_finite"] and t["final_loss"] < 0.5 * t["first_loss"] and t["eval_drop"] >= 0.30


def test_the_command_line_sets_the_trainer_spec_and_the_caps():
    import check

    args = check.parse(["--tiny", "--device", "cpu", "--out", "unused", "--compile", "--quantize", "int8"])
    assert check.spec_common(args)["compile"] is True and check.spec_common(args)["quantize"] == "int8"
    plain = check.parse(["--tiny", "--device", "cpu", "--out", "unused", "--cap", "speed=7"])
    assert "compile" not in check.spec_common(plain) and "quantize" not in check.spec_common(plain)
    assert args.caps == dict.fromkeys(check.SECTIONS, check.TINY_CAP) and plain.caps["speed"] == 7
    on_gpu = check.parse(["--out", "unused", "--compile"])
    for name in check.SECTIONS:
        added = check.COMPILE_SECONDS if name in check.TRAINING_SECTIONS else 0
        assert on_gpu.caps[name] == check.CAPS[name] + added


def test_a_section_past_its_cap_fails_and_the_rest_still_run(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(HERE / "check.py"), "--tiny", "--device", "cpu", "--out", str(out)]
    p = subprocess.run(
        [*cmd, "--sections", "generate,step_bench", "--cap", "generate=1", "--expandable-segments"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert p.returncode == 1, p.stdout + p.stderr
    report = json.loads((out / "check.json").read_text())
    s = report["sections"]
    assert s["generate"]["status"] == "failed" and "timed out after 1 s" in s["generate"]["error"]
    assert s["step_bench"]["status"] == "ok"
    assert report["flags"]["expandable_segments"] and "--expandable-segments" in p.stdout


def test_generate_takes_time_to_lora_s_lora_where_pipeline_train_did_not_run(tmp_path):
    import check

    for run in ("time_to_lora", "pipeline_train"):
        (tmp_path / run / "output").mkdir(parents=True)
    assert check.trained_lora(tmp_path).parent.parent.name == "pipeline_train"  # neither written yet
    (tmp_path / "time_to_lora" / "output" / "lora.safetensors").write_bytes(b"x")
    assert check.trained_lora(tmp_path) == tmp_path / "time_to_lora" / "output" / "lora.safetensors"
    (tmp_path / "pipeline_train" / "output" / "lora.safetensors").write_bytes(b"x")
    assert check.trained_lora(tmp_path) == tmp_path / "pipeline_train" / "output" / "lora.safetensors"


def test_full_size_pipeline_has_the_published_parameter_counts():
    import flux_dev

    parts = flux_dev.build(flux_dev.configs("full"), "meta", torch.bfloat16)
    counts = {k: sum(p.numel() for p in v.parameters()) for k, v in parts.items() if hasattr(v, "parameters")}
    assert counts == flux_dev.PUBLISHED_PARAMS
    assert parts["tokenizer_2"].model_max_length == 512


def test_time_to_lora_cut_at_its_cap_still_reports_what_it_measured(tmp_path):
    import time_to_lora
    from kiln_trainer import synthetic

    spec = tmp_path / "spec.json"
    run = dict(base_model_path="builtin:tiny-flux", trigger_word="sks", steps=100_000, device="cpu")
    data = synthetic.bands(str(tmp_path / "data"), n=2, size=64)
    spec.write_text(json.dumps(dict(run, version=1, dataset_dir=data, work_dir=str(tmp_path / "run"))))
    t0 = time.time()
    rc, _, wall = time_to_lora.timed_trainer("train", spec, HERE.parents[1] / "trainer", 0.5)
    assert rc is None and wall < 10 and time.time() - t0 < 15  # stopped at 1 s, long before its end

    started = {"type": "started", "at": 40.0, "load_seconds": 31.5, "memory_plan": {"reason": "the base in bf16"}}
    steps = [{"type": "step", "at": 41.0 + i, "seconds_per_step": 0.7 + i / 100} for i in range(9)]
    sample = {"type": "sample", "at": 40.5, "seconds": 6.0, "prompt": "p", "step": 0}
    seen = time_to_lora.so_far([started, sample, *steps])
    assert seen["steps_done"] == 9 and seen["s_per_step"] == pytest.approx(0.755)  # median of steps 4 to 9
    assert seen["start_seconds"] == 40.0 and seen["sample_seconds"] == [6.0] and seen["load_seconds"] == 31.5
    assert time_to_lora.so_far([]) == {"steps_done": 0, "sample_seconds": []}


@pytest.mark.parametrize(("flag", "row"), [("--speed-rows", "turbo"), ("--converge-rows", "fp4")])
def test_an_unknown_row_is_a_usage_error_before_anything_runs(tmp_path, flag, row):
    cmd = [sys.executable, str(HERE / "check.py"), "--tiny", "--device", "cpu", "--out", str(tmp_path / "out")]
    p = subprocess.run([*cmd, flag, f"plain,{row}"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and f"{flag}: unknown rows ['{row}']; choose from plain" in p.stderr
    assert not (tmp_path / "out" / "check.json").exists()
