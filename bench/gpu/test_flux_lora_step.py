"""Smoke test: the benchmark's --tiny mode trains for real on CPU and its FLOPs formula is exact."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("flux_lora_step.py")


def test_tiny_cpu_run(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--tiny",
            "--device",
            "cpu",
            "--warmup",
            "1",
            "--steps",
            "2",
            "--check-flops",
            "--json-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        # Tiny matmuls gain nothing from threads, and on a busy machine oversubscribed
        # OpenMP threads make them 10x slower.
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert printed == json.loads(out.read_text())
    # 2 default tiny resolutions x gradient checkpointing off/on
    assert [(r["resolution"], r["gradient_checkpointing"]) for r in printed] == [
        (128, False),
        (128, True),
        (256, False),
        (256, True),
    ]
    for r in printed:
        assert r["status"] == "ok"
        assert r["sec_per_step"] > 0 and r["sec_per_step_min"] > 0
        assert r["loss_finite"] and r["loss"] > 0
        assert r["lora_params_changed"] is True
        # The analytic count must equal what torch's FlopCounterMode sees in a real step
        # (exact LoRA step, plus the block recompute when checkpointing).
        assert abs(r["counted_step_tflop"] - r["step_hw_tflop"]) <= 1e-9 * r["step_hw_tflop"]
        assert r["step_lora_tflop"] < r["step_3x_tflop"]
    assert "step_lora" in proc.stdout  # the formula is printed


def test_image_ids_match_pipeline():
    from diffusers import FluxPipeline

    sys.path.insert(0, str(SCRIPT.parent))
    from flux_lora_step import image_ids

    ours = image_ids(32, 32, "cpu", torch.float32)
    ref = FluxPipeline._prepare_latent_image_ids(1, 32, 32, "cpu", torch.float32)
    assert torch.equal(ours, ref)
