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


def test_tiny_is_deterministic_and_loads(tmp_path, tiny_dir):
    # second build through the CLI, in another folder
    out = tmp_path / "again" / "tiny-flux"
    r = subprocess.run(
        [sys.executable, "-m", "kiln_trainer", "build-tiny", "--out", str(out)],
        env=cli_env(),
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert '"completed"' in r.stdout
    a, b = _weights(tiny_dir), _weights(str(out))
    assert set(a) == set(b) and len(a) > 50
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not [n for n in os.listdir(out.parent) if n.startswith(".")]  # no temp leftovers

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


def test_concurrent_builders_do_not_corrupt(tmp_path, tiny_dir):
    out = tmp_path / "shared" / "tiny-flux"
    cmd = [sys.executable, "-m", "kiln_trainer", "build-tiny", "--out", str(out)]
    procs = [
        subprocess.Popen(cmd, env=cli_env(), cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for _ in range(3)
    ]
    assert all(p.wait(timeout=180) == 0 for p in procs)
    a, b = _weights(tiny_dir), _weights(str(out))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert os.listdir(out.parent) == ["tiny-flux"]
