import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from conftest import ROOT, cli_env


def _weights(folder):
    out = {}
    for sub in sorted(os.listdir(folder)):
        d = os.path.join(folder, sub)
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if f.endswith(".safetensors"):
                out.update({f"{sub}/{k}": v for k, v in load_file(os.path.join(d, f)).items()})
    return out


def test_tiny_pipeline_loads_and_renders(tiny_dir):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny_dir)
    pipe.set_progress_bar_config(disable=True)
    for size in (64, 128):
        img = pipe(
            "a photo of sks",
            width=size,
            height=size,
            num_inference_steps=2,
            max_sequence_length=32,
            generator=torch.Generator().manual_seed(0),
        ).images[0]
        assert img.size == (size, size)


def test_tiny_vae_roundtrip_sizes(tiny_dir):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_dir, subfolder="vae")
    for h, w in ((64, 64), (128, 96), (512, 512)):
        x = torch.rand(1, 3, h, w) * 2 - 1
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mode()
            assert z.shape == (1, 16, h // 8, w // 8)
            assert vae.decode(z).sample.shape == x.shape


def test_build_is_idempotent(tiny_dir):
    from kiln_trainer import tiny

    before = os.stat(os.path.join(tiny_dir, "model_index.json")).st_mtime_ns
    assert tiny.build(tiny_dir) == tiny_dir
    assert os.stat(os.path.join(tiny_dir, "model_index.json")).st_mtime_ns == before


def test_buckets():
    from kiln_trainer import data

    assert data.pick_bucket(100, 100, 64) == (64, 64)
    w, h = data.pick_bucket(200, 100, 512)
    assert w % 16 == 0 and h % 16 == 0 and w > h and abs(w * h - 512 * 512) / 512**2 < 0.15
    w, h = data.pick_bucket(100, 300, 128)
    assert h > w


def test_concurrent_cli_builds_agree_with_the_in_process_one(tmp_path, tiny_dir):
    """Two `build-tiny` processes racing for one folder (one wins the rename, the other takes
    the loser's path): both succeed, and what is left is one whole model, bit for bit the
    session's in-process build, with no temp folder beside it."""
    out = tmp_path / "shared" / "tiny-flux"
    cmd = [sys.executable, "-m", "kiln_trainer", "build-tiny", "--out", str(out)]
    procs = [
        subprocess.Popen(
            cmd, env=cli_env(), cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for _ in range(2)
    ]
    stdouts = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert all('"completed"' in o for o in stdouts)
    a, b = _weights(tiny_dir), _weights(str(out))
    assert set(a) == set(b) and len(a) > 50
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert os.listdir(out.parent) == ["tiny-flux"]
