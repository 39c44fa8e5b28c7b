import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

# tiny models on a shared 2-core box: extra threads only add contention
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cli_env(**overrides):
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **overrides}


@pytest.fixture(scope="session")
def tiny_dir():
    from kiln_trainer import tiny

    return tiny.PRETRAINED


def make_dataset(folder, n=4, size=64, captions=True):
    from kiln_trainer import synthetic

    synthetic.bands(folder, n, size, "a photo of [trigger] bands" if captions else None)
    Path(folder, "manifest.json").write_text(json.dumps({"files": ["not-an-image.png"]}))
    return str(folder)


def train_spec(tmp_path, name="run", **kw):
    spec = dict(
        version=1,
        trigger_word="sks",
        base_model_path="builtin:tiny-flux",
        dataset_dir=make_dataset(tmp_path / "data"),
        work_dir=str(tmp_path / name),
        resolution=[64],
        steps=10,
        learning_rate=3e-3,
        optimizer="adamw",
        save_every=1000,
        sample_every=1000,
        sample_steps=2,
    )
    spec.update(kw)
    return spec


def write_json(path, obj):
    Path(path).write_text(json.dumps(obj))
    return str(path)


class Proc:
    """A trainer subprocess whose stdout events are collected by a thread."""

    def __init__(self, cmd, spec_path, stdin=subprocess.DEVNULL, extra=(), env=None):
        self.p = subprocess.Popen(
            [sys.executable, "-m", "kiln_trainer", cmd, *(["--spec", spec_path] if spec_path else []), *extra],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or cli_env(),
            cwd=str(ROOT),
            text=True,
        )
        self.events, self.stderr = [], ""
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self._e = threading.Thread(target=self._read_err, daemon=True)
        self._e.start()

    def _read(self):
        for line in self.p.stdout:
            self.events.append(json.loads(line))  # every stdout line must be JSON

    def _read_err(self):
        self.stderr = self.p.stderr.read()

    def wait_for(self, pred, timeout=120):
        t = time.time()
        while time.time() - t < timeout:
            if any(pred(e) for e in self.events):
                return True
            if self.p.poll() is not None and not self._t.is_alive():
                return any(pred(e) for e in self.events)
            time.sleep(0.05)
        return False

    def wait(self, timeout=300):
        rc = self.p.wait(timeout=timeout)
        self._t.join(5)
        self._e.join(5)
        return rc

    def of(self, type_):
        return [e for e in self.events if e["type"] == type_]


def run_cli(cmd, spec, tmp_path, timeout=300, name="spec.json", env=None, extra=()):
    path = spec if spec is None or isinstance(spec, str) else write_json(tmp_path / name, spec)
    p = Proc(cmd, path, env=env, extra=extra)
    rc = p.wait(timeout)
    return rc, p


@pytest.fixture(scope="session")
def trained_lora(tmp_path_factory):
    """One LoRA run shared by the tests of what a run leaves behind (weights, samples,
    checkpoints) and of resuming one. 60 steps on the product's default optimizer, adamw8bit,
    whose 8-bit state a resume must restore too; 60 steps make the lr warmup 3 steps long, so a
    resume that lost the schedule would restart it and show a lower lr on its second step.
    Two micro-batches a step over four images put the odd-numbered step-57 checkpoint
    mid-epoch."""
    tmp = tmp_path_factory.mktemp("lora_run")
    spec = train_spec(
        tmp,
        steps=60,
        learning_rate=1e-2,
        gradient_accumulation=2,
        optimizer="adamw8bit",
        save_every=19,
        max_step_saves_to_keep=2,
        sample_every=30,
        sample_prompts=["a [trigger] pattern", "plain prompt"],
    )
    rc, p = run_cli("train", spec, tmp)
    assert rc == 0, p.stderr[-3000:]
    return spec, p
