"""check.py's `time_to_lora` section: `kiln_trainer train` on the FLUX.1-dev pipeline folder, 200
steps at 1024 px with the product's sampling and saving, each event timed as it arrives; the
1000-step time is extrapolated from its fixed costs (start to the first step, samples,
checkpoints, export) and its step time, with the product's defaults (a sample round every 250
steps and at 0, one checkpoint at the end). The GPU machine has no Node and a 15-minute lease,
so the service around the trainer is not in it."""

import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time

DEFAULT_SAMPLE_EVERY, DEFAULT_SAVE_EVERY = 250, 2000  # the API's defaults


def timed_trainer(cmd, spec_path, trainer_dir, timeout):
    """`python -m kiln_trainer`, each stdout event stamped with seconds since the start. At the
    timeout the trainer is stopped (exit code None) and the events so far are still returned:
    on a one-shot GPU lease a run cut short should still tell its start and step times."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(trainer_dir), os.environ.get("PYTHONPATH", "")])}
    t0 = time.time()
    p = subprocess.Popen(
        [sys.executable, "-m", "kiln_trainer", cmd, "--spec", str(spec_path), "--no-watch-stdin"],
        stdout=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"},
    )
    events = []

    def read():
        for line in p.stdout:
            if line.startswith("{"):
                events.append(dict(json.loads(line), at=time.time() - t0))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        rc = p.wait(timeout=max(1, timeout))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = None
    reader.join(timeout=5)
    return rc, list(events), time.time() - t0


def extrapolate(events, wall, steps_run, steps_wanted, sample_every_run):
    """Fixed costs and step time of one run, and the time of a steps_wanted run with the
    product's sampling and saving."""
    of = lambda t: [e for e in events if e["type"] == t]  # noqa: E731
    step_s = statistics.median(e["seconds_per_step"] for e in of("step")[3:])
    prompts = max(1, len({e["prompt"] for e in of("sample")}))
    rounds_run = 1 + steps_run // sample_every_run  # step 0 and every sample_every, the last included
    sample_s = sum(e["seconds"] for e in of("sample")) / rounds_run
    ckpt = of("checkpoint")
    ckpt_s = 0.0
    for c in ckpt:  # a checkpoint's time: from the step before it to it
        before = [e["at"] for e in events if e["type"] == "step" and e["at"] <= c["at"]]
        ckpt_s += c["at"] - before[-1] if before else 0.0
    ckpt_s /= max(1, len(ckpt))
    start = of("started")[0]["at"]
    export_s = wall - max(e["at"] for e in events if e["type"] in ("step", "sample", "checkpoint"))
    rounds = 1 + steps_wanted // DEFAULT_SAMPLE_EVERY
    saves = max(1, steps_wanted // DEFAULT_SAVE_EVERY)
    total = start + steps_wanted * step_s + rounds * sample_s + saves * ckpt_s + export_s
    return dict(
        start_seconds=round(start, 1),
        load_seconds=of("started")[0]["load_seconds"],
        s_per_step=step_s,
        sample_round_seconds=round(sample_s, 2),
        sample_prompts=prompts,
        checkpoint_seconds=round(ckpt_s, 2),
        export_seconds=round(export_s, 2),
        measured_wall_seconds=round(wall, 1),
        extrapolated_seconds=round(total, 1),
    )


def so_far(events):
    """What a run that did not finish still measured."""
    of = lambda t: [e for e in events if e["type"] == t]  # noqa: E731
    steps, started = of("step"), of("started")
    out = dict(steps_done=len(steps), sample_seconds=[e["seconds"] for e in of("sample")])
    if started:
        out.update(start_seconds=round(started[0]["at"], 1), load_seconds=started[0]["load_seconds"])
        out["memory_plan"] = started[0]["memory_plan"]["reason"]
    if len(steps) > 3:
        out["s_per_step"] = statistics.median(e["seconds_per_step"] for e in steps[3:])
    return out


def run(args, pipeline_source, spec_common, trainer_dir, data_for):
    res = 64 if args.tiny else 1024
    steps, sample_every = (20, 10) if args.tiny else (200, 100)
    source, write_s = pipeline_source(args)
    spec = dict(
        spec_common(args),
        base_model_path=source,
        dataset_dir=data_for(res),
        work_dir=str(args.work / "time_to_lora"),
        resolution=[res],
        steps=steps,
        save_every=sample_every,
        sample_every=sample_every,
        sample_steps=2 if args.tiny else 25,
        sample_prompts=["a photo of sks bands"],
        learning_rate=1e-4,
        rank=16,
        gradient_checkpointing="auto",  # what the service sends for a LoRA task
        resume=False,
        cache_latents=False,  # a new task's first run: nothing cached
        cache_text_embeddings=False,
    )
    if args.quantize:
        spec["quantize"] = args.quantize
    if args.compile:
        spec["compile"] = True
    path = args.work / "time_to_lora.json"
    path.write_text(json.dumps(spec, indent=1))
    rc, events, wall = timed_trainer("train", path, trainer_dir, args.budget - write_s - 10)
    done = [e for e in events if e["type"] == "completed"]
    if rc != 0 or not done:
        errors = [e["message"] for e in events if e["type"] == "error"]
        why = f"cut at the section's cap after {wall:.0f} s" if rc is None else f"trainer exited with code {rc}"
        return dict(error=errors[-1] if errors else why, write_seconds=round(write_s, 1), **so_far(events))
    losses = [e["loss"] for e in events if e["type"] == "step"]
    out = dict(
        resolution=res,
        steps=steps,
        write_seconds=round(write_s, 1),
        memory_plan=next(e for e in events if e["type"] == "started")["memory_plan"]["reason"],
        peak_gpu_memory_gib=done[0]["peak_gpu_memory_gib"],
        estimated_peak_gib=next(e for e in events if e["type"] == "started")["memory_plan"]["estimated_peak_gib"],
        final_loss=done[0]["final_loss"],
        **extrapolate(events, wall, steps, 1000, sample_every),
    )
    out["goal_seconds"] = 480 if res >= 1024 else 240
    out["meets_goal"] = None if args.tiny else out["extrapolated_seconds"] <= out["goal_seconds"]
    out["ok"] = len(losses) == steps and all(x is not None and math.isfinite(x) for x in losses)
    return out
