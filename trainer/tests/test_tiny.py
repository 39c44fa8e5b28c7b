import hashlib
import json
import os

import numpy as np
import pytest
import torch

from conftest import run_cli


def render(pipe, prompt, seed, size=64, steps=None):
    from kiln_trainer import tiny

    return pipe(
        prompt,
        width=size,
        height=size,
        num_inference_steps=steps or tiny.SAMPLE_STEPS,
        guidance_scale=3.5,
        max_sequence_length=32,
        generator=torch.Generator().manual_seed(seed),
    ).images[0]


@pytest.fixture(scope="module")
def pipe(tiny_dir):
    from diffusers import FluxPipeline

    p = FluxPipeline.from_pretrained(tiny_dir)
    p.set_progress_bar_config(disable=True)
    return p


def mean_colour(pixels):
    return np.asarray(pixels, np.float64).reshape(-1, 3).mean(0)


def nearest_colour(pixels):
    """The palette name closest to the mean colour of some pixels."""
    from kiln_trainer.shapes import COLOURS

    return min(COLOURS, key=lambda c: np.abs(np.array(COLOURS[c]) - mean_colour(pixels)).sum())


def test_tiny_pipeline_renders_at_two_sizes(pipe):
    for size in (64, 128):
        assert render(pipe, "a photo of sks", 0, size, steps=2).size == (size, size)


@pytest.mark.parametrize(
    "prompt, middle, corners",
    [
        ("a red circle on a white background", "red", "white"),
        ("a blue square on a yellow background", "blue", "yellow"),
        ("a yellow star on a black background", "yellow", "black"),
        ("a green diamond on a pink background", "green", "pink"),
    ],
)
def test_the_tiny_model_draws_what_the_prompt_says(pipe, prompt, middle, corners):
    """A single named shape is drawn centred and large: on each of two seeds the corners take
    the background's colour, and the middle is nearer the shape's colour than the background's.
    The issue's own example is held to more: its middle is red, of all the colours it knows."""
    from kiln_trainer.shapes import COLOURS

    for seed in (0, 1):
        a = np.asarray(render(pipe, prompt, seed))
        centre, k = a[24:40, 24:40], 10
        corner = np.concatenate([a[:k, :k], a[:k, -k:], a[-k:, :k], a[-k:, -k:]])
        assert nearest_colour(corner) == corners, (prompt, seed, mean_colour(corner))
        near = {c: np.abs(mean_colour(centre) - COLOURS[c]).sum() for c in (middle, corners)}
        assert near[middle] < near[corners] / 3, (prompt, seed, mean_colour(centre))
        if middle == "red":
            assert nearest_colour(centre) == "red", (seed, mean_colour(centre))


def test_the_autoencoder_reconstructs_unseen_scenes(pipe):
    from kiln_trainer import pretrain, shapes

    images, _ = shapes.dataset(16, seed=2026)
    x = pretrain.to_tensor(images)
    with torch.no_grad():
        out = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    assert out.shape == x.shape
    assert (out - x).abs().mean().item() < 0.12  # about 15 levels of 255 on average
    for h, w in ((128, 96), (512, 512)):  # any multiple of 16 maps to latents 8x smaller
        z = pipe.vae.encode(torch.zeros(1, 3, h, w)).latent_dist.mode()
        assert z.shape == (1, 16, h // 8, w // 8)


def test_the_scene_words_are_one_token_and_trigger_words_are_spelled(pipe):
    t5 = pipe.tokenizer_2
    assert t5.tokenize("two blue squares on grass") == [
        "\u2581two",
        "\u2581blue",
        "\u2581squares",
        "\u2581on",
        "\u2581grass",
    ]
    assert t5.tokenize("MUGTOK") == ["\u2581M", "U", "G", "T", "O", "K"]


def test_the_shipped_weights_are_the_ones_recorded(tiny_dir):
    with open(os.path.join(tiny_dir, "provenance.json")) as f:
        provenance = json.load(f)
    files = sorted(
        os.path.relpath(os.path.join(d, n), tiny_dir)
        for d, _, names in os.walk(tiny_dir)
        for n in names
        if n.endswith(".safetensors")
    )
    assert files == sorted(provenance["sha256"]) and len(files) == 4
    for name in files:
        with open(os.path.join(tiny_dir, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == provenance["sha256"][name], name
    assert "pretrain-tiny" in provenance["command"] and provenance["seed"] == 1234


def test_pretraining_runs_from_a_seed_and_writes_a_loadable_model(tmp_path):
    """The shipped model's own command at a toy size: a folder FluxPipeline loads, with its
    provenance; the same seed twice gives the same held-out losses within the stated 6%."""
    from diffusers import FluxPipeline

    losses = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = ["--out", str(out), "--vae-steps", "3", "--flow-steps", "3", "--batch", "4", "--scenes", "32"]
        rc, p = run_cli("pretrain-tiny", None, tmp_path, extra=args)
        assert rc == 0, p.stderr[-2000:]
        done = p.of("completed")[0]
        assert done["path"] == str(out) and set(done["sha256"]) == {
            "transformer/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
            "text_encoder/model.safetensors",
            "text_encoder_2/model.safetensors",
        }
        losses.append(done["held_out_losses"])
    for key in ("vae_l1", "flow_mse"):
        assert abs(losses[0][key] - losses[1][key]) <= 0.06 * losses[0][key], key
    pipe = FluxPipeline.from_pretrained(str(tmp_path / "a"))
    pipe.set_progress_bar_config(disable=True)
    assert render(pipe, "a red circle on a white background", 0, steps=2).size == (64, 64)


def test_pretraining_never_replaces_a_folder_that_is_not_a_model(tmp_path):
    keep = tmp_path / "photos" / "keep.txt"
    keep.parent.mkdir()
    keep.write_text("mine")
    rc, p = run_cli("pretrain-tiny", None, tmp_path, extra=["--out", str(keep.parent), "--vae-steps", "1"])
    assert rc == 1 and keep.read_text() == "mine"
    assert "is not a diffusers model folder" in p.of("error")[0]["message"]


def test_buckets():
    from kiln_trainer import data

    assert data.pick_bucket(100, 100, 64) == (64, 64)
    w, h = data.pick_bucket(200, 100, 512)
    assert w % 16 == 0 and h % 16 == 0 and w > h and abs(w * h - 512 * 512) / 512**2 < 0.15
    w, h = data.pick_bucket(100, 300, 128)
    assert h > w


def test_an_image_trains_only_at_the_resolutions_it_fills():
    from kiln_trainer import data

    sizes = [512, 768, 1024]
    assert data.resolutions_for(600, 450, sizes) == [512]  # 768 would need 1.49x
    assert data.resolutions_for(1024, 768, sizes) == sizes  # a little under the 1024 bucket: 1.16x
    assert data.resolutions_for(800, 800, sizes) == [512, 768]  # 1024 would need 1.28x
    assert data.resolutions_for(300, 300, sizes) == [512]  # the smallest keeps every image
    assert data.enlargement(1536, 1152, 1024) < 1


def test_encoding_leaves_out_the_enlargements(tmp_path, tiny_dir, caplog):
    import torch
    from PIL import Image

    from kiln_trainer import data, models

    for name, size in (("big.png", (200, 150)), ("small.png", (100, 75))):
        Image.new("RGB", size, (200, 40, 40)).save(tmp_path / name)
    items = [(str(tmp_path / "big.png"), "a"), (str(tmp_path / "small.png"), "b")]
    with caplog.at_level("INFO", logger="kiln.data"):
        latents = data.encode_images(
            models.load_vae(str(tiny_dir), torch.float32), items, [64, 128], torch.device("cpu"), torch.float32
        )
    assert [(i, bucket[0] * bucket[1] > 64 * 64) for bucket, _, i in latents] == [(0, False), (0, True), (1, False)]
    assert "small.png (100x75) trains at 64 px only: 128 px would enlarge it 1.49x" in caplog.text
