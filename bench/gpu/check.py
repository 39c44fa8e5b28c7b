#!/usr/bin/env python
"""The one command that proves Kiln's GPU path, made for a single try on a lent GPU.

    python bench/gpu/check.py --out DIR                      # FLUX.1-dev sizes, random weights, cuda
    python bench/gpu/check.py --out DIR --model PATH_OR_REPO # real FLUX.1-dev weights
    python bench/gpu/check.py --tiny --device cpu --out DIR  # every section on tiny shapes, on a CPU

Sections (`--sections a,b` runs a subset, in this order):
  tiny_train      builtin:tiny-flux, 200 steps, bf16 on a GPU (fp32 on a CPU): every loss finite,
                  the fixed-batch loss at least 30% lower with the LoRA than without, and the
                  base model's step-0 sample of "a red circle on a white background", rendered
                  by the product's sampler in that dtype, red in the middle and white in the corners
  pipeline_train  a FLUX.1-dev pipeline folder (published configs, random weights written to disk)
                  trained by `kiln_trainer train` at 1024 px, rank 16, adamw8bit, checkpointing,
                  40 steps with a checkpoint and a sample: s/step, peak memory, load and sample time
  time_to_lora    the trainer's whole run, 200 steps at 1024 px, and 1000 steps extrapolated
                  (time_to_lora.py)
  generate        `kiln_trainer generate` at 1024 px with pipeline_train's LoRA, or time_to_lora's
  step_bench      one training step timed two ways, the bench's idealised one (flux_lora_step.py)
                  and the product's own (kiln_trainer.train), with MFU
  speed           the product's step at 512 and 1024 px for each plan: plain, flat LoRA, checkpointed,
                  selective checkpointing, compiled, an fp8 base (eager and compiled), the planner's
                  choice under 24 and 12 GiB caps, and FULL under an 80 GiB cap: s/step, peak
                  memory, MFU, losses against plain's (speed.py)
  converge        200 steps at 512 px of plain, compiled, flat, fp8, nf4 and int8: each loss curve
                  against plain's (speed.py)

--compile, --quantize nf4|int8|fp8 and --expandable-segments apply to every section that trains; a
section's `ok` means what it means without them. All seven need more device time than one
session has: bench/gpu/README.md gives the order of calls.

Each section runs in its own process group under a time cap (`--cap name=seconds`), so a crash
or a hang in one (a CUDA illegal memory access poisons its process) costs only that section.
DIR/check.json is rewritten after every section: {"device", "versions", "flags", "sections": {name:
{"status": "ok" | "failed", ...figures}}}; DIR/<section>.log holds each one's output."""

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import speed
import time_to_lora as ttl

HERE = Path(__file__).resolve().parent
TRAINER = HERE.parents[1] / "trainer"
sys.path[:0] = [str(HERE), str(TRAINER)]

SECTIONS = ("tiny_train", "pipeline_train", "time_to_lora", "generate", "step_bench", "speed", "converge")
# A device call may run 10 minutes and a session holds 15 of device time, machine start included
# (about 35 s); tiny_train and speed together took 222 s on an H200.
CAPS = dict(tiny_train=90, pipeline_train=240, time_to_lora=420, generate=85, step_bench=100, speed=300, converge=420)
COMPILE_SECONDS = 150
# On a CPU a cap only bounds a hang, and one figure per section cannot be tuned: `make test` runs
# this beside two other lanes on 2 cores, and the same tiny check took 197 s on one such machine
# and over 860 s on another (CI, 2026-12-04), where tiny_train broke a 180 s cap with nothing
# wrong. So every section gets one bound, room for a cold inductor compile on the slow machine
# (gcc builds each kernel: tiny_train --compile took 303 s there alone, 148 s with a warm cache).
TINY_CAP = 1200
TRAINING_SECTIONS = ("tiny_train", "pipeline_train", "time_to_lora", "speed", "converge")
PROMPT = "a photo of [trigger] bands"
DRAW_PROMPT = "a red circle on a white background"  # a scene the pretrained tiny model knows


# ----------------------------------------------------------------------------- running the trainer


def trainer(cmd, spec, work, name, timeout):
    """`python -m kiln_trainer <cmd>` as the service runs it; returns (exit code, events)."""
    path = work / f"{name}.json"
    path.write_text(json.dumps(spec, indent=1))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TRAINER), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
    }
    try:
        p = subprocess.run(
            [sys.executable, "-m", "kiln_trainer", cmd, "--spec", str(path), "--no-watch-stdin"],
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env=env,
            timeout=max(1, timeout),
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {max(1, timeout):.0f} s", []
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    for e in events:
        if e["type"] not in ("step", "log"):
            print("event:", json.dumps(e), flush=True)
    return p.returncode, events


def of(events, type_):
    return [e for e in events if e["type"] == type_]


def finite(x):
    return x is not None and math.isfinite(x)


def failure(rc, events):
    errors = of(events, "error")
    return {
        "error": errors[-1]["message"]
        if errors
        else f"trainer exited with code {rc}"
        if isinstance(rc, int)
        else f"trainer {rc}"
    }


def spec_common(args):
    return dict(
        version=1,
        trigger_word="sks",
        device=args.device,
        dtype="auto",
        save_every=1000,
        sample_every=1000,
        **({"quantize": args.quantize} if args.quantize else {}),
        **({"compile": True} if args.compile else {}),
    )


# ----------------------------------------------------------------------------- sections


def tiny_train(args):
    from diffusers import FluxTransformer2DModel

    from kiln_trainer import models, numerics, synthetic, tiny
    from kiln_trainer.evaluate import fixed_batch_loss

    data = synthetic.bands(str(args.work / "tiny-data"), n=4, size=64, caption=PROMPT)
    spec = dict(
        spec_common(args),
        base_model_path="builtin:tiny-flux",
        dataset_dir=data,
        work_dir=str(args.work / "tiny_train"),
        resolution=[64],
        steps=200,
        learning_rate=3e-3,
        rank=16,
        batch_size=4,
        optimizer="adamw8bit",
        resume=False,
        sample_prompts=[DRAW_PROMPT],
    )
    rc, ev = trainer("train", spec, args.work, "tiny_train", args.budget - 20)
    if rc != 0 or not of(ev, "completed"):
        return failure(rc, ev)
    losses = [e["loss"] for e in of(ev, "step")]
    device = models.pick_device(args.device)
    dtype = numerics.compute_dtype("auto", device)
    source = tiny.PRETRAINED
    tr = FluxTransformer2DModel.from_pretrained(source, subfolder="transformer", dtype=dtype).to(device)
    before = fixed_batch_loss(tr, source, data, "sks", 64, device, dtype)
    tr.load_lora_adapter(of(ev, "completed")[0]["weights_path"], prefix="transformer")
    after = fixed_batch_loss(tr, source, data, "sks", 64, device, dtype)
    started = of(ev, "started")[0]
    out = dict(
        dtype=started["dtype"],
        optimizer=started["optimizer"],
        attention=started["attention"],
        steps=len(losses),
        all_finite=all(map(finite, losses)),
        skipped_steps=len(of(ev, "skipped_step")),
        first_loss=losses[0],
        final_loss=of(ev, "completed")[0]["final_loss"],
        s_per_step=statistics.median(e["seconds_per_step"] for e in of(ev, "step")[5:]),
        eval_loss_before=before,
        eval_loss_after=after,
        eval_drop=1 - after / before,
        quantize=started["memory_plan"]["quantize"],
        compiled=started["compiled"],
        **base_drawing(next(e["path"] for e in of(ev, "sample") if e["step"] == 0)),
    )
    out["ok"] = out["all_finite"] and out["steps"] == 200 and out["eval_drop"] >= 0.30 and out["base_draws_prompt"]
    return out


def base_drawing(path):
    """Mean colours of the middle and the corners of a 64 px sample of DRAW_PROMPT."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    middle = a[24:40, 24:40].reshape(-1, 3).mean(0)
    corners = np.concatenate([a[:10, :10], a[:10, -10:], a[-10:, :10], a[-10:, -10:]]).reshape(-1, 3).mean(0)
    red = middle[0] > 150 and max(middle[1], middle[2]) < 90
    return dict(
        base_sample_middle=[round(v) for v in middle],
        base_sample_corners=[round(v) for v in corners],
        base_draws_prompt=bool(red and corners.min() > 200),
    )


def pipeline_source(args):
    """--model, or the random FLUX.1-dev folder (written once, shared with `generate`)."""
    import torch

    import flux_dev

    if args.model:
        return args.model, 0.0
    t0 = time.time()
    folder = args.work / ("flux-tiny-random" if args.tiny else "flux-dev-random")
    dtype = torch.float32 if args.tiny else torch.bfloat16
    flux_dev.write_random_pipeline(str(folder), "tiny" if args.tiny else "full", args.device, dtype)
    return str(folder), time.time() - t0


def pipeline_train(args):
    from kiln_trainer import synthetic

    res = 64 if args.tiny else 1024
    source, write_s = pipeline_source(args)
    data = synthetic.bands(str(args.work / f"data-{res}"), n=4, size=res, caption=PROMPT)
    spec = dict(
        spec_common(args),
        base_model_path=source,
        dataset_dir=data,
        work_dir=str(args.work / "pipeline_train"),
        resolution=[res],
        steps=40,
        save_every=20,
        learning_rate=1e-4,
        rank=16,
        optimizer="adamw8bit",
        gradient_checkpointing=True,
        sample_prompts=[PROMPT],
        sample_steps=2 if args.tiny else 8,
        resume=False,
    )
    t0 = time.time()
    rc, ev = trainer("train", spec, args.work, "pipeline_train", args.budget - write_s - 10)
    if rc != 0 or not of(ev, "completed"):
        return dict(failure(rc, ev), write_seconds=write_s)
    done, started = of(ev, "completed")[0], of(ev, "started")[0]
    losses = [e["loss"] for e in of(ev, "step")]
    out = dict(
        model=source,
        resolution=res,
        write_seconds=round(write_s, 1),
        wall_seconds=round(time.time() - t0, 1),
        load_seconds=started["load_seconds"],
        dtype=started["dtype"],
        optimizer=started["optimizer"],
        attention=started["attention"],
        trainable_parameters=started["trainable_parameters"],
        memory_plan=started["memory_plan"]["reason"],
        s_per_step=statistics.median(e["seconds_per_step"] for e in of(ev, "step")[3:]),
        peak_gpu_memory_gib=done["peak_gpu_memory_gib"],
        estimated_peak_gib=started["memory_plan"]["estimated_peak_gib"],
        checkpoints=[e["step"] for e in of(ev, "checkpoint")],
        sample_seconds=[e["seconds"] for e in of(ev, "sample")],
        first_loss=losses[0],
        final_loss=done["final_loss"],
        all_finite=all(map(finite, losses)),
        skipped_steps=done["skipped_steps"],
        lora=done["weights_path"],
    )
    out["ok"] = out["all_finite"] and len(losses) == 40 and out["checkpoints"] and out["sample_seconds"]
    return out


def trained_lora(work):
    """pipeline_train's LoRA, or time_to_lora's where pipeline_train did not run (a GPU session
    runs time_to_lora and generate together, without it)."""
    trained = [work / run / "output" / "lora.safetensors" for run in ("pipeline_train", "time_to_lora")]
    return next((p for p in trained if p.is_file()), trained[0])


def generate(args):
    import numpy as np
    from PIL import Image

    res = 64 if args.tiny else 1024
    source, write_s = pipeline_source(args)
    lora = trained_lora(args.work)
    spec = dict(
        version=1,
        base_model_path=source,
        prompts=["a photo of sks bands"],
        output_dir=str(args.work / "generate"),
        loras=[{"path": str(lora), "scale": 1.0}] if lora.is_file() else [],
        width=res,
        height=res,
        steps=2 if args.tiny else 8,
        device=args.device,
        dtype="auto",
    )
    t0 = time.time()
    rc, ev = trainer("generate", spec, args.work, "generate", args.budget - write_s - 5)
    if rc != 0 or not of(ev, "completed"):
        return failure(rc, ev)
    pixels = np.asarray(Image.open(of(ev, "image")[0]["path"]), dtype=np.float32)
    out = dict(
        resolution=res,
        wall_seconds=round(time.time() - t0, 1),
        trainer_seconds=of(ev, "completed")[0]["wall_seconds"],
        with_lora=lora.is_file(),
        lora_from=lora.parent.parent.name if lora.is_file() else None,
        images=len(of(ev, "image")),
        pixel_std=float(pixels.std()),
    )
    out["ok"] = (
        out["images"] == 1 and out["with_lora"] and out["pixel_std"] > 0
    )  # NaN latents decode to one flat colour
    return out


def step_bench(args):
    """The product's step (speed.Bench) and the bench's idealised one on the same bf16 base, at
    1024 px with checkpointing off and on. A fixed comparison: --compile and --quantize do not
    apply."""
    import flux_lora_step as bench

    fixed = SimpleNamespace(**{**vars(args), "compile": False, "quantize": None, "profile": False})
    b = speed.Bench(fixed)
    res = 128 if args.tiny else 1024
    warmup, steps = (1, 2) if args.tiny else (2, 4)
    t0 = time.time()
    rows = []
    for name in ("plain", "checkpointed"):
        row = b.run(name, speed.speed_setup(name, fixed, b.blocks_total, res), res, warmup, steps)
        rows.append(dict(row, step="product", gradient_checkpointing=name == "checkpointed"))
    b.model.delete_adapters("default")
    layers = bench.add_lora(b.model)  # idealised: bf16 LoRA, plain AdamW, no clipping or checks
    b.model.train()
    timing = SimpleNamespace(tiny=args.tiny, batch=1, warmup=warmup, steps=steps, check_flops=False)
    for ckpt in (False, True):
        row = bench.run_config(b.model, layers, b.cfg, timing, b.device, b.dtype, res, ckpt, b.peak)
        rows.append(dict(row, step="idealised"))
    out = dict(
        card=b.card,
        peak_tflops=b.peak,
        attention=b.attention,
        build_and_run_seconds=round(time.time() - t0, 1),
        rows=rows,
    )
    out["ok"] = all(r["status"] == "ok" and r["loss_finite"] for r in rows)
    return out


def time_to_lora(args):
    from kiln_trainer import synthetic

    def data(res):
        return synthetic.bands(str(args.work / f"ttl-data-{res}"), n=12, size=res, caption=PROMPT)

    return ttl.run(args, pipeline_source, spec_common, TRAINER, data)


RUNNERS = {
    "tiny_train": tiny_train,
    "pipeline_train": pipeline_train,
    "time_to_lora": time_to_lora,
    "generate": generate,
    "step_bench": step_bench,
    "speed": speed.speed,
    "converge": speed.converge,
}


# ----------------------------------------------------------------------------- orchestration


def environment(device):
    import torch

    from kiln_trainer import models, numerics

    dev = models.pick_device(device)
    info = {"type": dev.type, "name": "cpu: " + (platform.processor() or platform.machine())}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info = {
            "type": "cuda",
            "name": p.name,
            "memory_gib": round(p.total_memory / 2**30, 1),
            "capability": f"{p.major}.{p.minor}",
            "multiprocessors": p.multi_processor_count,
        }
    return info, dict(numerics.versions(dev), python=platform.python_version())


def run_section(name, args, extra):
    """The section in a child process group; its whole tree goes at the cap."""
    result = args.out / f".{name}.result.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--section-child", name, "--result", str(result), *extra]
    t0 = time.time()
    with open(args.out / f"{name}.log", "w") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=args.caps[name])
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            rc = None
    wall = round(time.time() - t0, 1)
    if result.is_file():
        out = json.loads(result.read_text())
        result.unlink()
        ok = out.pop("ok", False)
        return dict(status="ok" if ok else "failed", seconds=wall, **out)
    tail = (args.out / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
    why = f"timed out after {args.caps[name]} s" if rc is None else f"exited with code {rc}"
    return dict(status="failed", seconds=wall, error=f"{why}; last lines: {' | '.join(tail)}")


def fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


SHOWN = {
    "tiny_train": [
        "dtype",
        "s_per_step",
        "first_loss",
        "final_loss",
        "eval_drop",
        "skipped_steps",
        "base_sample_middle",
    ],
    "pipeline_train": [
        "s_per_step",
        "peak_gpu_memory_gib",
        "estimated_peak_gib",
        "load_seconds",
        "sample_seconds",
        "write_seconds",
        "final_loss",
    ],
    "generate": ["wall_seconds", "trainer_seconds", "lora_from"],
    "step_bench": ["card", "attention"],
    "speed": ["card", "attention"],
    "converge": ["card", "resolution", "steps", "window"],
    "time_to_lora": [
        "s_per_step",
        "start_seconds",
        "sample_round_seconds",
        "export_seconds",
        "measured_wall_seconds",
        "extrapolated_seconds",
        "meets_goal",
        "peak_gpu_memory_gib",
    ],
}


def print_table(report):
    print(f"\n# {report['device']['name']} | " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v))
    flags = ", ".join(f"--{k.replace('_', '-')}{'' if v is True else f' {v}'}" for k, v in report["flags"].items() if v)
    print(f"flags: {flags or 'none'}")
    print(f"{'section':<15} {'status':<7} {'seconds':>7}  figures")
    for name, r in report["sections"].items():
        figs = r.get("error") or ", ".join(f"{k} {fmt(r[k])}" for k in SHOWN[name] if k in r)
        print(f"{name:<15} {r['status']:<7} {r['seconds']:>7}  {figs}")
        for row in r.get("rows", []):
            peak = row.get("peak_mem_gib")
            if "plan" in row:  # speed, converge
                what = (
                    f"{row['plan']:<13} {row['resolution']}px {row['quantize'] or 'none':<4} "
                    f"ckpt {row['checkpointed_blocks']:>2}{' compiled' if row['compiled'] else ''}"
                    f"{' flat' if row.get('flat_lora') else ''}"
                    f"{' FULL' if row['training_type'] == 'FULL' else ''}"
                )
                loss = f"loss gap {fmt(row.get('loss_gap'))}"
                if "last_mean" in row:
                    loss = (
                        f"last {r['window']} mean {fmt(row['last_mean'])} "
                        f"({fmt(row.get('last_vs_plain'))} vs plain, matches {row.get('matches_plain')})"
                    )
                loss += f", stream {row.get('stream_dtype')}, alloc retries {row.get('alloc_retries')}"
            else:
                ckpt = "on " if row["gradient_checkpointing"] else "off"
                what = f"{row['step']:<9} {row['resolution']}px ckpt {ckpt}"
                loss = f"loss {fmt(row.get('loss'))}"
            print(
                f"{'':<15} {what} {row['status']:<4} {fmt(row.get('sec_per_step'))} s/step, "
                f"peak {fmt(peak) if peak else '-'} GiB (est. {fmt(row.get('estimated_peak_gib', '-'))}), "
                f"{fmt(row.get('achieved_tflops'))} TFLOP/s, "
                f"MFU {fmt(row.get('mfu'))}, {loss}"
            )


def parse(argv):
    """The command line, checked whole (here, not in a section's process, where a mistake would
    cost a machine start), with each section's cap."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny shapes everywhere (CPU smoke mode)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--out", required=True, type=Path, help="check.json and one log per section go here")
    ap.add_argument("--work", type=Path, help="models, datasets and runs (default: OUT/work)")
    ap.add_argument("--model", help="a FLUX.1-dev folder or cached repo id instead of random weights")
    ap.add_argument("--cap", action="append", default=[], metavar="SECTION=SECONDS")
    ap.add_argument("--compile", action="store_true", help="torch.compile each transformer block")
    ap.add_argument("--quantize", choices=("nf4", "int8", "fp8"), help="quantize the frozen base")
    ap.add_argument("--speed-rows", help="only these rows of the speed section, comma-separated")
    ap.add_argument("--converge-rows", help="only these rows of the converge section (plain always runs)")
    ap.add_argument(
        "--profile", action="store_true", help="profile one more step of each speed row (OUT/profile-*.txt)"
    )
    ap.add_argument(
        "--expandable-segments",
        action="store_true",
        help="PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True for every section (less fragmentation near a cap)",
    )
    ap.add_argument("--section-child", choices=SECTIONS, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.caps = dict.fromkeys(SECTIONS, TINY_CAP) if args.tiny else dict(CAPS)
    if args.compile and not args.tiny:  # compiling costs time up front; --cap still has the last word
        for name in TRAINING_SECTIONS:
            args.caps[name] += COMPILE_SECONDS
    for c in args.cap:
        name, _, secs = c.partition("=")
        if name not in SECTIONS or not secs.isdigit():
            ap.error(f"--cap takes SECTION=SECONDS with SECTION one of {', '.join(SECTIONS)}, got {c!r}")
        args.caps[name] = int(secs)
    args.names = [s for s in args.sections.split(",") if s]
    unknown = set(args.names) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    for flag, wanted, rows in (
        ("--speed-rows", args.speed_rows, speed.ROWS),
        ("--converge-rows", args.converge_rows, speed.CONVERGE_ROWS),
    ):
        unknown = set((wanted or "").split(",")) - {"", *rows}
        if unknown:
            ap.error(f"{flag}: unknown rows {sorted(unknown)}; choose from {', '.join(rows)}")
    return args


def main(argv=None):
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work = (args.work or args.out / "work").resolve()
    args.work.mkdir(parents=True, exist_ok=True)

    if args.section_child:
        from kiln_trainer import events

        events.setup_logging()
        args.budget = args.caps[args.section_child]
        args.result.write_text(json.dumps(RUNNERS[args.section_child](args), indent=1, default=str))
        return 0

    extra = [
        "--out",
        str(args.out),
        "--work",
        str(args.work),
        "--device",
        args.device,
        *(["--tiny"] if args.tiny else []),
        *(["--model", args.model] if args.model else []),
        *(["--compile"] if args.compile else []),
        *(["--quantize", args.quantize] if args.quantize else []),
        *(["--speed-rows", args.speed_rows] if args.speed_rows else []),
        *(["--converge-rows", args.converge_rows] if args.converge_rows else []),
        *(["--profile"] if args.profile else []),
        *(f"--cap={n}={s}" for n, s in args.caps.items()),
    ]
    if args.expandable_segments:  # read when CUDA starts: every section (and trainer) is a new process
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    device, versions = environment(args.device)
    flags = dict(compile=args.compile, quantize=args.quantize, expandable_segments=args.expandable_segments)
    report = {"device": device, "versions": versions, "flags": flags, "sections": {}}
    for name in [s for s in SECTIONS if s in args.names]:
        print(f"# {name} (cap {args.caps[name]} s) ...", flush=True)
        report["sections"][name] = run_section(name, args, extra)
        (args.out / "check.json").write_text(json.dumps(report, indent=1))
        print(f"# {name}: {report['sections'][name]['status']} in {report['sections'][name]['seconds']} s", flush=True)
    print_table(report)
    return 0 if all(r["status"] == "ok" for r in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
