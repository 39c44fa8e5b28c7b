"""Captioning with a local vision-language model: the CLI contract on the tiny BLIP."""

from PIL import Image

from conftest import run_cli, write_json
from kiln_trainer import tiny_captioner


def test_captions_each_image_with_the_local_model(tmp_path):
    model = tiny_captioner.build(str(tmp_path / "captioner"))
    images = []
    for i, colour in enumerate([(200, 10, 10), (10, 10, 200), (240, 240, 240)]):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (96, 64), colour).save(path)
        images.append(str(path))
    rc, p = run_cli(
        "caption",
        {"version": 1, "model_path": model, "images": images, "prompt": "a photo of", "max_new_tokens": 6},
        tmp_path,
    )
    assert rc == 0, p.stderr
    captions = p.of("caption")
    assert [c["path"] for c in captions] == images
    vocab = set(tiny_captioner.WORDS)
    for c in captions:
        words = c["caption"].split()
        assert words and set(words) <= vocab, c
    assert p.of("completed")[0]["captions"] == 3


def test_a_missing_model_folder_is_a_spec_error(tmp_path):
    image = tmp_path / "a.png"
    Image.new("RGB", (64, 64)).save(image)
    spec = write_json(tmp_path / "s.json", {"version": 1, "model_path": str(tmp_path / "nope"), "images": [str(image)]})
    rc, p = run_cli("caption", spec, tmp_path)
    assert rc == 2
    assert p.of("error")[0]["where"] == "spec.model_path"
