"""check.py's `speed` and `time_to_lora` sections: how fast the product trains, plan by plan,
and how long a whole LoRA takes from the trainer's start to its exported weights.

speed         the product's own step (train.forward_backward + train.optimizer_step: fp32 LoRA,
              autocast, adamw8bit, clipping, the non-finite guard) on the FLUX.1-dev transformer
              (random weights made on the card) at 512 and 1024 px, batch 1, one row per plan:
                plain         bf16 base, no checkpointing
                checkpointed  every block checkpointed (the trainer's default)
                selective@40  the planner's checkpointed blocks for a 40 GiB card, under that cap
                compiled      plain, each block torch.compile'd
                fp8           plain, the block linears as torchao float8 matmuls (Ada/Hopper)
                int8, nf4     the base quantized so, every block checkpointed, no cap
                plan@24       the planner's choice for a 24 GiB card, under that cap
                plan@12       the planner's choice for a 12 GiB card, under that cap
              Every row starts from the same LoRA and sees the same inputs and noise, so its
              losses are comparable step for step with plain's: `loss_gap` is the largest
              difference. Caps use torch.cuda.set_per_process_memory_fraction. Each row carries
              the planner's estimate of its training peak beside the measured one.
time_to_lora  `kiln_trainer train` on the FLUX.1-dev pipeline folder, 200 steps at 1024 px with the
              product's sampling and saving, each event timed as it arrives; the 1000-step time is
              extrapolated from its fixed costs (start to the first step, samples, checkpoints,
              export) and its step time, with the product's defaults (a sample round every 250
              steps and at 0, one checkpoint at the end).

--tiny runs both on tiny shapes on a CPU; a plan row there applies the FLUX.1-dev plan's
quantization and checkpointed fraction to the tiny model, so every code path still runs."""

import functools
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time

CAPPED_ROWS = {"selective@40": 40, "plan@24": 24, "plan@12": 12}
# compiled last: its compile time is the least predictable, and a section cut at its cap keeps
# the rows printed before it in speed.log
ROWS = ("plain", "checkpointed", "selective@40", "fp8", "int8", "nf4", "plan@24", "plan@12", "compiled")


@functools.cache
def flux_plan(cap, resolution):
    from kiln_trainer import memory

    return memory.plan(**memory.model_inputs(None, 16), gpu_memory_gib=cap, resolution=resolution, training_type="LORA")


def row_setup(name, args, blocks_total, resolution):
    """(quantize, checkpointed blocks, compile, memory cap GiB or None) for a row."""
    quantize, compile_ = args.quantize, args.compile or name == "compiled"
    if name in ("plain", "compiled", "fp8"):
        return quantize, 0, compile_, None
    if name == "checkpointed":
        return quantize, blocks_total, compile_, None
    if name in ("int8", "nf4"):
        return name, blocks_total, compile_, None
    cap = CAPPED_ROWS[name]
    plan = flux_plan(cap, 1024 if args.tiny else resolution)
    blocks = round(plan["checkpointed_blocks"] / plan["blocks"] * blocks_total)
    if name.startswith("plan@"):
        quantize = plan["quantize"] or quantize
    return quantize, blocks, compile_, None if args.tiny else cap


def speed(args):
    import torch
    from peft.tuners.lora import LoraLayer

    import flux_lora_step as bench
    from kiln_trainer import blocks, lora, memory, models, numerics, quantize as lowbit, train

    device = models.pick_device(args.device)
    dtype = torch.float32 if args.tiny else torch.bfloat16
    attention = numerics.configure_attention()
    cfg = bench.TINY if args.tiny else bench.FLUX_DEV
    n_txt = bench.T5_TOKENS["tiny" if args.tiny else "full"]
    peak, card = bench.detect_peak_tflops(device, None)
    warmup, steps = (1, 3) if args.tiny else (2, 5)
    total_gib = torch.cuda.get_device_properties(device).total_memory / 2**30 if device.type == "cuda" else None
    index = (device.index if device.index is not None else torch.cuda.current_device()) if total_gib else None
    guard = numerics.Guard(numerics.describe(dtype, attention, numerics.versions(device)), lambda *a, **k: None)
    shapes = memory.shapes(cfg, bench.LORA_RANK)  # to set each row's estimate beside its measured peak
    rows, model, model_quant = [], None, "unbuilt"
    plain_losses, inputs = {}, {}
    for res in (64, 128) if args.tiny else (512, 1024):
        lat = res // 8
        g = torch.Generator("cpu").manual_seed(0)
        inputs[res] = [
            torch.randn(s, generator=g).to(device)
            for s in [(1, 16, lat, lat), (1, n_txt, cfg["joint_attention_dim"]), (1, cfg["pooled_projection_dim"])]
        ]
    # rows outside, resolutions inside: the base is rebuilt only when a row quantizes it differently
    for name in [r for r in ROWS if r in args.speed_rows.split(",")] if args.speed_rows else ROWS:
        for res, (x0, seq, pooled) in inputs.items():
            quantize, ckpt_blocks, compile_, cap = row_setup(
                name, args, cfg["num_layers"] + cfg["num_single_layers"], res
            )
            fp8 = name == "fp8"
            row = dict(plan=name, resolution=res, quantize=quantize, checkpointed_blocks=ckpt_blocks, compiled=compile_)
            estimate = memory.estimate(
                shapes,
                resolution=res,
                batch=1,
                text_tokens=n_txt,
                training_type="LORA",
                optimizer="adamw8bit",
                quantize=quantize,
                checkpointed=ckpt_blocks,
                trainable_bytes=4,
                compute_bytes=dtype.itemsize,
            )
            row.update(fp8=fp8, cap_gib=cap, estimated_peak_gib=round(estimate["training"] / memory.GIB, 2))
            if fp8 and quantize:
                rows.append(dict(row, status="skipped: fp8 runs on a bf16 base, not with --quantize"))
                continue
            if model is None or model_quant != (quantize, fp8):  # neither change can be undone
                model = params = adapters = None  # every reference, or the old base outlives the build
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                torch.manual_seed(0)  # the same random base for every row
                model = bench.build_model(cfg, device, dtype)
                if quantize:
                    lowbit.quantize_blocks(model, quantize, device, dtype)
                model_quant = (quantize, fp8)
                if fp8:
                    try:
                        blocks.fp8_each(model, device)
                    except blocks.FP8Unsupported as e:
                        model = None
                        rows.append(dict(row, status=f"unsupported: {e}"))
                        continue
                params = lora.add_lora(model, bench.LORA_RANK, 0)
                adapters = [m for m in model.modules() if isinstance(m, LoraLayer)]
            torch.manual_seed(0)  # the same LoRA start for every row
            for layer in adapters:
                layer.reset_lora_parameters("default", True)
            model.train()
            blocks.checkpoint_first(model, ckpt_blocks)
            if compile_:
                blocks.compile_each(model)
            opt, _ = train.make_optimizer("adamw8bit", params, 1e-4)
            fl = bench.step_flops(bench.flux_flops(cfg, (res // 16) ** 2, n_txt, 1), ckpt_blocks > 0)
            if device.type == "cuda":
                gc.collect()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                row["base_gib"] = torch.cuda.memory_allocated(device) / 2**30  # model, LoRA, optimizer, inputs
                if cap:
                    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total_gib), index)
            times, losses = [], []
            try:
                for i in range(warmup + steps):
                    noise, sigmas = train.step_noise(0, i, 0, x0.shape)
                    bench.sync(device)
                    t = time.perf_counter()
                    noise, sigmas = noise.to(device), sigmas.to(device)
                    loss = train.forward_backward(model, x0, seq, pooled, noise, sigmas, 1.0, dtype)
                    train.optimizer_step(params, opt, guard, i + 1, loss)
                    bench.sync(device)
                    times.append(time.perf_counter() - t)
                    losses.append(loss)
                s = statistics.mean(times[warmup:])
                row.update(
                    status="ok",
                    sec_per_step=s,
                    compile_and_first_steps_seconds=sum(times[:warmup]),
                    peak_mem_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
                    losses=losses,
                    loss_finite=all(map(math.isfinite, losses)),
                    achieved_tflops=fl["step_lora"] / 1e12 / s,
                    mfu=fl["step_lora"] / 1e12 / s / peak if peak else None,
                )
                if name == "plain":
                    plain_losses[res] = losses
                if res in plain_losses:
                    row["loss_gap"] = max(abs(a - b) for a, b in zip(losses, plain_losses[res], strict=True))
            except torch.OutOfMemoryError:
                row["status"] = "oom"
            except Exception as e:  # a row that breaks (a compile, a kernel) is a finding; the rest still run
                row["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            finally:
                opt = None
                if device.type == "cuda":
                    torch.cuda.set_per_process_memory_fraction(1.0, index)
                if compile_:
                    for b in blocks.blocks(model):
                        b._compiled_call_impl = None  # the next row runs eagerly unless it compiles
                    torch._dynamo.reset()
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = dict(card=card, peak_tflops=peak, attention=attention, rows=rows)
    # ok: every row that ran has finite losses; the uncapped bf16 rows must run at all
    out["ok"] = all(r["loss_finite"] for r in rows if r["status"] == "ok") and all(
        r["status"] == "ok" for r in rows if r["plan"] in ("plain", "checkpointed")
    )
    return out


# ----------------------------------------------------------------------------- time to LoRA

DEFAULT_SAMPLE_EVERY, DEFAULT_SAVE_EVERY = 250, 2000  # the API's defaults


def timed_trainer(cmd, spec_path, trainer_dir, timeout):
    """`python -m kiln_trainer`, each stdout event stamped with seconds since the start."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(trainer_dir), os.environ.get("PYTHONPATH", "")])}
    t0 = time.time()
    p = subprocess.Popen(
        [sys.executable, "-m", "kiln_trainer", cmd, "--spec", str(spec_path), "--no-watch-stdin"],
        stdout=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"},
    )
    events = []
    for line in p.stdout:
        if line.startswith("{"):
            events.append(dict(json.loads(line), at=time.time() - t0))
            if time.time() - t0 > timeout:
                p.kill()
                break
    return p.wait(), events, time.time() - t0


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


def time_to_lora(args, pipeline_source, spec_common, trainer_dir, data_for):
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
        return dict(error=errors[-1] if errors else f"trainer exited with code {rc}", write_seconds=write_s)
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
