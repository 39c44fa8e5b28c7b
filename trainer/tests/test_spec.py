"""The CLI contract for bad input: one `error` event per bad field, exit 2 (spec) or 1."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import cli_env, run_cli, train_spec

BAD = [
    ("version", {"version": 2}),
    ("version", {"version": None}),
    ("trigger_word", {"trigger_word": None}),
    ("trigger_word", {"trigger_word": ""}),
    ("rank", {"rank": 0}),
    ("rank", {"rank": 257}),
    ("steps", {"steps": 0}),
    ("learning_rate", {"learning_rate": -1e-4}),
    ("optimizer", {"optimizer": "sgd"}),
    ("training_type", {"training_type": "DORA"}),
    ("dataset_dir", {"dataset_dir": None}),
    ("dataset_dir", {"dataset_dir": "/nonexistent/kiln"}),
    ("work_dir", {"work_dir": None}),
    ("base_model_path", {"base_model_path": None}),
    ("base_model_path", {"base_model_path": "builtin:huge-flux"}),
    ("bogus_field", {"bogus_field": 1}),
    ("batch_size", {"batch_size": 0}),
    ("gradient_accumulation", {"gradient_accumulation": 1.5}),
    ("save_every", {"save_every": 0}),
    ("max_step_saves_to_keep", {"max_step_saves_to_keep": 0}),
    ("sample_every", {"sample_every": -5}),
    ("sample_steps", {"sample_steps": 0}),
    ("sample_prompts", {"sample_prompts": "a cat"}),
    ("resolution", {"resolution": [100]}),
    ("resolution", {"resolution": []}),
    ("dtype", {"dtype": "fp8"}),
    ("device", {"device": "tpu"}),
    ("resume", {"resume": "yes"}),
    ("init_lora", {"init_lora": "/nonexistent/lora.safetensors"}),
    ("seed", {"seed": -1}),
    ("sample_width", {"sample_width": 30}),
]


@pytest.mark.parametrize("field,patch", BAD, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD)])
def test_bad_field(tmp_path, field, patch):
    spec = train_spec(tmp_path)
    for k, v in patch.items():
        if v is None:
            spec.pop(k)
        else:
            spec[k] = v
    rc, p = run_cli("train", spec, tmp_path, timeout=60)
    assert rc == 2, p.stderr
    errs = p.of("error")
    assert errs and all(e["kind"] == "spec" for e in errs)
    assert [e for e in errs if e["where"] == f"spec.{field}" and field in e["message"]], errs
    assert not p.of("started") and not p.of("completed")


def test_not_json(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text("{nope")
    rc, p = run_cli("train", str(path), tmp_path)
    assert rc == 2 and p.of("error")[0]["kind"] == "spec"


def test_prodigy_missing_is_spec_error(tmp_path):
    try:
        import prodigyopt  # noqa: F401

        pytest.skip("prodigyopt installed")
    except ImportError:
        pass
    rc, p = run_cli("train", train_spec(tmp_path, optimizer="prodigy", steps=1), tmp_path)
    assert rc == 2
    (e,) = p.of("error")
    assert e["kind"] == "spec" and e["where"] == "spec.optimizer" and "prodigyopt" in e["message"]


def test_unreadable_image(tmp_path):
    spec = train_spec(tmp_path, steps=1)
    with open(os.path.join(spec["dataset_dir"], "broken.jpg"), "w") as f:
        f.write("this is text, not a jpeg")
    rc, p = run_cli("train", spec, tmp_path)
    assert rc == 1
    (e,) = p.of("error")
    assert e["kind"] == "dataset" and "broken.jpg" in e["message"] and "broken.jpg" in e["where"]
    assert not p.of("completed")


def test_empty_dataset(tmp_path):
    spec = train_spec(tmp_path, steps=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    spec["dataset_dir"] = str(empty)
    rc, p = run_cli("train", spec, tmp_path)
    assert rc == 1 and p.of("error")[0]["kind"] == "dataset"


def test_missing_model_offline(tmp_path):
    spec = train_spec(tmp_path, steps=1, base_model_path="kiln-test/not-a-real-flux")
    rc, p = run_cli("train", spec, tmp_path)
    assert rc == 1
    (e,) = p.of("error")
    assert e["kind"] == "model" and e["where"] == "spec.base_model_path"
    assert "HF_TOKEN" in e["message"] and "huggingface-cli download kiln-test/not-a-real-flux" in e["message"]
    assert "builtin:tiny-flux" in e["message"]


def test_unreachable_hub_fails_fast(tmp_path):
    # Online mode, but the hub endpoint is a closed loopback port: the error must come in
    # seconds, not after the download retries of every component.
    spec = train_spec(tmp_path, steps=1, base_model_path="kiln-test/not-a-real-flux")
    env = cli_env(HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    t0 = time.time()
    rc, p = run_cli("train", spec, tmp_path, timeout=60, env=env)
    assert rc == 1 and time.time() - t0 < 30
    (e,) = p.of("error")
    assert e["kind"] == "model" and "huggingface-cli download kiln-test/not-a-real-flux" in e["message"]


def test_missing_local_folder(tmp_path):
    spec = train_spec(tmp_path, steps=1, base_model_path=str(tmp_path / "nope"))
    rc, p = run_cli("train", spec, tmp_path)
    assert rc == 1 and p.of("error")[0]["kind"] == "model"


def test_generate_bad_spec(tmp_path):
    spec = dict(
        version=1,
        base_model_path="builtin:tiny-flux",
        prompts=[],
        output_dir=str(tmp_path / "o"),
        loras=[{"path": "/nope.safetensors", "scale": 1}],
        num_images=0,
    )
    rc, p = run_cli("generate", spec, tmp_path)
    assert rc == 2
    assert {e["where"] for e in p.of("error")} == {"spec.prompts", "spec.loras", "spec.num_images"}


# Each writes 1 MiB to `path` as the trainer does: plain Python, safetensors (Rust), torch's zip writer.
WRITES = {
    "open": "open(path, 'wb').write(b'0' * 2**20)",
    "safetensors": "from safetensors.torch import save_file; save_file({'w': torch.zeros(2**18)}, path)",
    "torch": "from kiln_trainer.train import atomic_torch_save; atomic_torch_save({'w': torch.zeros(2**18)}, path)",
}


@pytest.mark.parametrize("library", list(WRITES))
def test_a_write_the_full_disk_refuses_is_a_disk_error(tmp_path, library):
    """On a 64 KiB tmpfs, mounted in a private user and mount namespace (no root needed where the
    kernel allows those), the kernel refuses the write with ENOSPC, as on a full disk."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1) to mount a small tmpfs")
    full = tmp_path / "full"
    full.mkdir()
    code = (
        "import json, os, sys, torch\n"
        "from kiln_trainer import __main__ as cli\n"
        f"path = {str(full / 'out')!r}\n"
        f"try:\n    {WRITES[library]}\nexcept Exception as e:\n    rc = cli.report(e, 'train')\n"
        "    print('LEFT ' + json.dumps(os.listdir(os.path.dirname(path))), file=sys.stderr)\n"
        "    sys.exit(rc)\n"
    )
    mount_then_run = f'mount -t tmpfs -o size=64k tmpfs "{full}" || exit 77; exec "$0" -c "$1"'
    p = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount_then_run, sys.executable, code],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    if p.returncode == 77 or "unshare failed" in p.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()[-200:]}")
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == 1 and len(events) == 1, (p.returncode, p.stdout, p.stderr[-2000:])
    assert events[0]["kind"] == "disk" and events[0]["where"] == "train", events
    if library == "torch":
        assert "\nLEFT []" in p.stderr, "the cut write left no temp file to hold the space"
