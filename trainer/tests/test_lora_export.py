import os

import numpy as np
import torch
from safetensors import safe_open
from torch import nn

from conftest import run_cli, write_json


def test_lora_keys_match_transformer(trained_lora, tiny_dir):
    from diffusers import FluxTransformer2DModel

    from kiln_trainer.lora import target_linears

    spec, p = trained_lora
    path = p.of("completed")[0]["weights_path"]
    tr = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer")
    modules = dict(tr.named_modules())
    targets = set(target_linears(tr))
    with safe_open(path, "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
        shapes = {k: f.get_slice(k).get_shape() for k in keys}
    pairs = {}
    for k in keys:
        assert k.startswith("transformer.") and k.endswith((".lora_A.weight", ".lora_B.weight")), k
        mod, ab = k[len("transformer.") :].rsplit(".lora_", 1)
        assert isinstance(modules.get(mod), nn.Linear) and mod in targets, k
        pairs.setdefault(mod, set()).add(ab)
    assert all(v == {"A.weight", "B.weight"} for v in pairs.values())
    assert set(pairs) == targets and len(pairs) == len(targets) == 34
    for mod in pairs:  # A: [r, in], B: [out, r]
        lin = modules[mod]
        assert shapes[f"transformer.{mod}.lora_A.weight"] == [16, lin.in_features]
        assert shapes[f"transformer.{mod}.lora_B.weight"] == [lin.out_features, 16]
    assert meta["base_model"] == "builtin:tiny-flux" and meta["trigger_word"] == "sks"
    assert meta["rank"] == "16" and meta["steps"] == str(spec["steps"]) and meta["format"]


def test_samples_written(trained_lora):
    spec, p = trained_lora
    samples = p.of("sample")
    assert [(e["step"], e["prompt"]) for e in samples] == [
        (0, "a sks pattern"),  # the base model, before the first step
        (0, "plain prompt"),
        (30, "a sks pattern"),
        (30, "plain prompt"),
        (60, "a sks pattern"),
        (60, "plain prompt"),
    ]
    for e in samples:
        assert os.path.isfile(e["path"]) and e["path"].endswith(f"step_{e['step']}_{samples.index(e) % 2}.png")
    # Each sample's colour distance to the training images is the one quality.py gives for its file.
    from PIL import Image

    from kiln_trainer import data, quality

    items = data.list_images(spec["dataset_dir"], spec["trigger_word"])
    colours = quality.mean_histogram(data.open_image(path) for path, _ in items)
    for e in samples:
        with Image.open(e["path"]) as im:
            assert e["histogram_l1"] == round(quality.histogram_l1(quality.colour_histogram(im), colours), 4)
        assert 0 < e["histogram_l1"] <= 2
    assert sorted(os.listdir(os.path.join(spec["work_dir"], "samples"))) == [
        "step_0_0.png",
        "step_0_1.png",
        "step_30_0.png",
        "step_30_1.png",
        "step_60_0.png",
        "step_60_1.png",
    ]


def test_diffusers_loads_lora_and_it_draws_towards_the_training_images(trained_lora, tiny_dir):
    """diffusers' own loader applies the LoRA, and what it changes is the point of training: the
    trigger prompt's image comes closer to the training images. Measured per pixel: the bands are
    one fixed pattern, and the colour histogram is too coarse for their saturated noise."""
    from diffusers import FluxPipeline

    from kiln_trainer import data, tiny

    spec, p = trained_lora
    path = p.of("completed")[0]["weights_path"]
    pipe = FluxPipeline.from_pretrained(tiny_dir)
    pipe.set_progress_bar_config(disable=True)
    items = data.list_images(spec["dataset_dir"], spec["trigger_word"])
    mean_image = np.mean([np.asarray(data.open_image(path), np.float64) for path, _ in items], axis=0)

    def render():
        return pipe(
            "a photo of sks",
            width=64,
            height=64,
            num_inference_steps=tiny.SAMPLE_STEPS,
            max_sequence_length=32,
            generator=torch.Generator().manual_seed(0),
        ).images[0]

    base = render()
    assert np.array_equal(np.asarray(base), np.asarray(render()))  # same seed, same image
    pipe.load_lora_weights(path)
    with_lora = render()
    before, after = (np.abs(np.asarray(im, np.float64) - mean_image).mean() for im in (base, with_lora))
    assert after <= 0.7 * before, (before, after)


def test_generate_with_lora(trained_lora, tmp_path, monkeypatch):
    _, p = trained_lora
    lora = p.of("completed")[0]["weights_path"]
    spec = dict(
        version=1,
        base_model_path="builtin:tiny-flux",
        loras=[{"path": lora, "scale": 0.8}],
        prompts=["a [trigger] pattern", "another"],
        width=64,
        height=64,
        steps=3,
        seed=7,
        num_images=2,
        output_dir=str(tmp_path / "gen"),
    )
    rc, g = run_cli("generate", spec, tmp_path)
    assert rc == 0, g.stderr[-3000:]
    images = g.of("image")
    assert [(e["prompt"], e["index"], e["seed"]) for e in images] == [
        ("a [trigger] pattern", 0, 7),
        ("a [trigger] pattern", 1, 8),
        ("another", 2, 9),
        ("another", 3, 10),
    ]
    (done,) = g.of("completed")
    assert done["images"] == [e["path"] for e in images] and done["wall_seconds"] > 0
    from PIL import Image

    for e in images:
        with Image.open(e["path"]) as im:
            assert im.size == (64, 64)
    assert len(os.listdir(tmp_path / "gen")) == 4

    # scale 0 must give the base model's image: the adapter weight really is applied. These
    # references are made by the same `generate` code in this process; the first one matching
    # the command's own image shows they stand for what the command makes.
    one = dict(spec, num_images=1, prompts=["another"], seed=9)
    here = {
        scale: generate_here(dict(one, loras=loras, output_dir=str(tmp_path / f"here-{scale}")), monkeypatch)
        for scale, loras in [(0.8, spec["loras"]), (0.0, [{"path": lora, "scale": 0.0}]), (None, [])]
    }
    c = np.asarray(Image.open(images[2]["path"]), dtype=np.int16)
    assert np.abs(here[0.8] - c).max() <= 1
    assert np.abs(here[0.0] - here[None]).max() <= 1
    assert np.abs(c - here[None]).mean() > 0.5


def generate_here(raw_spec, monkeypatch):
    """`kiln_trainer generate` without a process of its own, so a reference image costs no
    interpreter and library start; returns its one image as int16 pixels."""
    from PIL import Image

    from kiln_trainer import events, sampling, spec as specmod

    emitted = []
    monkeypatch.setattr(events, "emit", lambda type_, **fields: emitted.append({"type": type_, **fields}))
    sampling.generate(specmod.load(write_json(raw_spec["output_dir"] + ".json", raw_spec), "generate"))
    (image,) = [e for e in emitted if e["type"] == "image"]
    return np.asarray(Image.open(image["path"]), dtype=np.int16)
