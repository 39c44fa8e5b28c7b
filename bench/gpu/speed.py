"""check.py's `speed` and `converge` sections: the product's own training step (train.forward_backward
+ train.optimizer_step: fp32 LoRA, autocast, adamw8bit, clipping, the non-finite guard) on the
FLUX.1-dev transformer (random weights made on the card), batch 1, one row per setup.

speed     512 and 1024 px, 2 warm-up and 5 timed steps a row:
            plain         bf16 base, no checkpointing
            flat          plain, the LoRA as one flat buffer (flat_lora): one optimizer update
            checkpointed  every block checkpointed
            selective@40  the planner's checkpointed blocks for a 40 GiB card, under that cap
            fp8           plain on an fp8 base: block weights cast once to e4m3, the forward and
                          input-gradient matmuls in fp8 (fp8.py; Ada/Hopper and newer)
            int8, nf4     the base quantized so, every block checkpointed, no cap
            plan@24       the planner's choice for a 24 GiB card, under that cap
            plan@12       the planner's choice for a 12 GiB card, under that cap
            full@80       FULL fine-tuning as the planner sets it for an 80 GiB card (its trained
                          weights' dtype, every block checkpointed), under that cap
            compiled      plain, each block torch.compile'd
            compiled-fp8  fp8, each block torch.compile'd (fusing the casts to fp8 into their neighbours)
          `loss_gap` is the largest step-for-step difference from plain's losses.
converge  200 steps at 512 px of plain, compiled, flat, fp8, nf4 and int8 (nothing checkpointed, no cap):
          the issue's test that a speed option does not hurt the loss curve. A row matches plain
          when the mean of its last 50 losses is within 2% of plain's (set before any GPU run).

Every LoRA row starts from the same LoRA and sees the same inputs and noise, so its losses are
comparable step for step with plain's. Caps use torch.cuda.set_per_process_memory_fraction.
Each row carries the planner's estimate of its training peak beside the measured one, the
dtype of the residual stream entering the last block, and the caching allocator's retries (each
one frees cached blocks and synchronizes: the cost of running close to a cap).

--tiny runs both on tiny shapes (64 px only) on a CPU; a plan row there applies the FLUX.1-dev plan's
quantization and checkpointed fraction to the tiny model, so every code path still runs."""

import functools
import gc
import json
import math
import statistics
import time

CAPPED_ROWS = {"selective@40": 40, "plan@24": 24, "plan@12": 12, "full@80": 80}
# compiled last: its compile time is the least predictable, and a section cut at its cap keeps
# the rows printed before it in the section's log
ROWS = (
    "plain",
    "flat",
    "checkpointed",
    "selective@40",
    "fp8",
    "int8",
    "nf4",
    "plan@24",
    "plan@12",
    "full@80",
    "compiled",
    "compiled-fp8",
)
CONVERGE_ROWS = ("plain", "compiled", "flat", "fp8", "nf4", "int8")
CONVERGE_STEPS, CONVERGE_WINDOW, CONVERGE_TOLERANCE = 200, 50, 0.02


@functools.cache
def flux_plan(cap, resolution, training_type="LORA"):
    from kiln_trainer import memory

    return memory.plan(
        **memory.model_inputs(None, 16),
        gpu_memory_gib=cap,
        resolution=resolution,
        training_type=training_type,
        gradient_checkpointing="auto" if training_type == "LORA" else True,
    )


def speed_setup(name, args, blocks_total, resolution):
    """How a speed row trains: quantize, checkpointed blocks, compile, cap in GiB or None,
    training type, trained weights' bytes, flat LoRA."""
    row = dict(
        quantize=args.quantize,
        checkpointed=0,
        compile=args.compile or name.startswith("compiled"),
        cap=None,
        training_type="LORA",
        trainable_bytes=4,
        flat=name == "flat",
    )
    if name in ("fp8", "compiled-fp8"):
        row["quantize"] = "fp8"
    elif name == "checkpointed":
        row["checkpointed"] = blocks_total
    elif name in ("int8", "nf4"):
        row.update(quantize=name, checkpointed=blocks_total)
    elif name in CAPPED_ROWS:
        full = name == "full@80"
        plan = flux_plan(CAPPED_ROWS[name], 1024 if args.tiny else resolution, "FULL" if full else "LORA")
        row["checkpointed"] = round(plan["checkpointed_blocks"] / plan["blocks"] * blocks_total)
        row["cap"] = None if args.tiny else CAPPED_ROWS[name]
        if name.startswith("plan@"):
            row["quantize"] = plan["quantize"] or args.quantize
        if full:
            row.update(
                quantize=None, training_type="FULL", trainable_bytes=4 if plan["trainable_dtype"] == "fp32" else 2
            )
    return row


def converge_setup(name, args, blocks_total, resolution):
    """As the speed row of that name, with nothing checkpointed."""
    return dict(speed_setup(name, args, blocks_total, resolution), checkpointed=0)


class Bench:
    """The FLUX.1-dev transformer on the card, rebuilt only when a row needs another base, and the
    product's step on it."""

    def __init__(self, args):
        import torch

        import flux_lora_step as bench
        from kiln_trainer import memory, models, numerics

        self.args, self.bench = args, bench
        self.device = models.pick_device(args.device)
        self.dtype = torch.float32 if args.tiny else torch.bfloat16
        self.attention = numerics.configure_attention()
        self.cfg = bench.TINY if args.tiny else bench.FLUX_DEV
        self.n_txt = bench.T5_TOKENS["tiny" if args.tiny else "full"]
        self.peak, self.card = bench.detect_peak_tflops(self.device, None)
        cuda = self.device.type == "cuda"
        self.total_gib = torch.cuda.get_device_properties(self.device).total_memory / 2**30 if cuda else None
        self.index = (
            (self.device.index if self.device.index is not None else torch.cuda.current_device()) if cuda else None
        )
        self.guard = numerics.Guard(
            numerics.describe(self.dtype, self.attention, numerics.versions(self.device)), lambda *a, **k: None
        )
        self.shapes = memory.shapes(self.cfg, bench.LORA_RANK)  # for each row's estimate
        self.blocks_total = self.cfg["num_layers"] + self.cfg["num_single_layers"]
        self.model, self.key = None, None

    def inputs(self, res):
        import torch

        lat, g = res // 8, torch.Generator("cpu").manual_seed(0)
        shapes = [
            (1, 16, lat, lat),
            (1, self.n_txt, self.cfg["joint_attention_dim"]),
            (1, self.cfg["pooled_projection_dim"]),
        ]
        return [torch.randn(s, generator=g).to(self.device) for s in shapes]

    def estimate_gib(self, setup, res):
        from kiln_trainer import memory

        est = memory.estimate(
            self.shapes,
            resolution=res,
            batch=1,
            text_tokens=self.n_txt,
            training_type=setup["training_type"],
            optimizer="adamw8bit",
            quantize=setup["quantize"],
            checkpointed=setup["checkpointed"],
            trainable_bytes=setup["trainable_bytes"],
            compute_bytes=self.dtype.itemsize,
        )
        return round(est["training"] / memory.GIB, 2)

    def prepare(self, setup):
        """The model and its trained parameters for a row. Quantizing and a full fine-tune's
        training change the base for good, so those rebuild it."""
        import torch
        from peft.tuners.lora import LoraLayer

        from kiln_trainer import blocks, lora, quantize as lowbit

        key = (setup["quantize"], setup["training_type"])
        if self.model is None or self.key != key or setup["training_type"] == "FULL":
            self.model = self.params = self.adapters = None  # every reference, or the old base outlives the build
            self.release()
            torch.manual_seed(0)  # the same random base for every row
            self.model = self.bench.build_model(self.cfg, self.device, self.dtype)
            if setup["quantize"]:
                lowbit.quantize_blocks(self.model, setup["quantize"], self.device, self.dtype)
            if setup["training_type"] == "FULL":
                self.model.requires_grad_(True)
                self.params, self.adapters = list(self.model.parameters()), []
                if setup["trainable_bytes"] == 4:
                    from kiln_trainer import numerics

                    numerics.trainable_to_fp32(self.params)
            else:
                self.params = lora.add_lora(self.model, self.bench.LORA_RANK, 0)
                self.adapters = [m for m in self.model.modules() if isinstance(m, LoraLayer)]
            self.key = key
        torch.manual_seed(0)  # the same LoRA start for every row
        for layer in self.adapters:
            layer.reset_lora_parameters("default", True)
        self.model.train()
        blocks.checkpoint_first(self.model, setup["checkpointed"])
        if setup["compile"]:
            blocks.compile_each(self.model)

    def profile(self, label, params, opt, x0, seq, pooled, step):
        """One more step under torch.profiler: its kernels by time, written to OUT/profile-<label>.txt,
        to see where a step's time goes beyond the matmuls."""
        import torch
        from torch.profiler import ProfilerActivity

        from kiln_trainer import train

        cuda = self.device.type == "cuda"
        activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
        noise, sigmas = train.step_noise(0, step, 0, x0.shape)
        with torch.profiler.profile(activities=activities) as prof:
            loss = train.forward_backward(
                self.model, x0, seq, pooled, noise.to(self.device), sigmas.to(self.device), 1.0, self.dtype
            )
            train.optimizer_step(params, opt, self.guard, step + 1, loss)
            self.bench.sync(self.device)
        events = prof.key_averages()
        sort = "self_device_time_total" if cuda else "self_cpu_time_total"
        path = self.args.out / f"profile-{label}.txt"
        path.write_text(events.table(sort_by=sort, row_limit=40))
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA] if cuda else []
        return dict(file=path.name, cuda_kernels=len(kernels), cpu_ops=sum(e.count for e in events))

    def release(self):
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def run(self, name, setup, res, warmup, steps):
        """One row: `steps` timed steps after `warmup` ones, as a dict for check.json."""
        import torch

        from kiln_trainer import blocks, flat, fp8, train

        row = dict(
            plan=name,
            resolution=res,
            quantize=setup["quantize"],
            checkpointed_blocks=setup["checkpointed"],
            compiled=setup["compile"],
            flat_lora=setup["flat"],
            training_type=setup["training_type"],
            cap_gib=setup["cap"],
            estimated_peak_gib=self.estimate_gib(setup, res),
        )
        try:
            self.prepare(setup)
        except fp8.Unsupported as e:
            self.model = None
            return dict(row, status=f"unsupported: {e}")
        x0, seq, pooled = self.inputs(res)
        stream = []
        hook = blocks.blocks(self.model)[-1].register_forward_pre_hook(
            lambda m, a, kw: stream.append(str((a[0] if a else kw["hidden_states"]).dtype).removeprefix("torch.")),
            with_kwargs=True,
        )
        params = [flat.flatten(self.params)] if setup["flat"] else self.params
        opt, _ = train.make_optimizer("adamw8bit", params, 1e-4)
        full = setup["training_type"] == "FULL"
        fl = self.bench.step_flops(
            self.bench.flux_flops(self.cfg, (res // 16) ** 2, self.n_txt, 1), setup["checkpointed"] > 0
        )
        flops = fl["step_3x" if full else "step_lora"]  # a full fine-tune also needs every weight's gradient
        cuda = self.device.type == "cuda"
        if cuda:
            self.release()
            torch.cuda.reset_peak_memory_stats(self.device)
            row["base_gib"] = torch.cuda.memory_allocated(self.device) / 2**30  # model, trained weights, inputs
            retries = torch.cuda.memory_stats(self.device).get("num_alloc_retries", 0)
            if setup["cap"]:
                torch.cuda.set_per_process_memory_fraction(min(1.0, setup["cap"] / self.total_gib), self.index)
        times, losses = [], []
        try:
            for i in range(warmup + steps):
                noise, sigmas = train.step_noise(0, i, 0, x0.shape)
                self.bench.sync(self.device)
                t = time.perf_counter()
                loss = train.forward_backward(
                    self.model, x0, seq, pooled, noise.to(self.device), sigmas.to(self.device), 1.0, self.dtype
                )
                train.optimizer_step(params, opt, self.guard, i + 1, loss)
                self.bench.sync(self.device)
                times.append(time.perf_counter() - t)
                losses.append(loss)
            if self.args.profile:
                row["profile"] = self.profile(f"{name}-{res}", params, opt, x0, seq, pooled, warmup + steps)
            s = statistics.mean(times[warmup:])
            row.update(
                status="ok",
                sec_per_step=s,
                compile_and_first_steps_seconds=sum(times[:warmup]),
                peak_mem_gib=torch.cuda.max_memory_allocated(self.device) / 2**30 if cuda else None,
                alloc_retries=torch.cuda.memory_stats(self.device).get("num_alloc_retries", 0) - retries
                if cuda
                else None,
                stream_dtype=stream[0] if stream else None,
                losses=losses,
                loss_finite=all(map(math.isfinite, losses)),
                achieved_tflops=flops / 1e12 / s,
                mfu=flops / 1e12 / s / self.peak if self.peak else None,
            )
        except torch.OutOfMemoryError:
            row["status"] = "oom"
        except Exception as e:  # a row that breaks (a compile, a kernel) is a finding; the rest still run
            row["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        finally:
            hook.remove()
            opt = params = None
            if setup["flat"]:  # its gradient views go with its buffer
                for p in self.params:
                    p.grad = None
            if cuda:
                torch.cuda.set_per_process_memory_fraction(1.0, self.index)
            if setup["compile"]:
                blocks.eager_each(self.model)  # the next row runs eagerly unless it compiles
                torch._dynamo.reset()
        print(json.dumps({k: v for k, v in row.items() if k != "losses"}), flush=True)
        return row


def chosen(names, wanted):
    """The rows of `names` that --speed-rows or --converge-rows asks for (check.py checked them)."""
    return [r for r in names if not wanted or r in wanted.split(",")]


def speed(args):
    b = Bench(args)
    rows, plain = [], {}
    # rows outside, resolutions inside: the base is rebuilt only when a row needs another one
    for name in chosen(ROWS, args.speed_rows):
        for res in (64,) if args.tiny else (512, 1024):  # one size is enough to run every path on a CPU
            row = b.run(name, speed_setup(name, args, b.blocks_total, res), res, *((1, 3) if args.tiny else (2, 5)))
            if row["status"] == "ok" and name == "plain":
                plain[res] = row["losses"]
            if row["status"] == "ok" and res in plain and row["training_type"] == "LORA":
                row["loss_gap"] = max(abs(x - y) for x, y in zip(row["losses"], plain[res], strict=True))
            rows.append(row)
    out = dict(card=b.card, peak_tflops=b.peak, attention=b.attention, rows=rows)
    # ok: every row that ran has finite losses; the uncapped bf16 rows must run at all
    out["ok"] = all(r["loss_finite"] for r in rows if r["status"] == "ok") and all(
        r["status"] == "ok" for r in rows if r["plan"] in ("plain", "checkpointed")
    )
    return out


def converge(args):
    b = Bench(args)
    res = 64 if args.tiny else 512
    steps = 20 if args.tiny else CONVERGE_STEPS
    window = min(CONVERGE_WINDOW, steps // 2)
    names = chosen(CONVERGE_ROWS, args.converge_rows)
    if "plain" not in names:
        names.insert(0, "plain")  # the reference
    # the first 2 steps (a compile) are left out of s/step, not out of the losses
    rows = [b.run(name, converge_setup(name, args, b.blocks_total, res), res, 2, steps - 2) for name in names]
    plain = rows[0]
    for row in rows:
        if row["status"] != "ok":
            continue
        row["first_mean"] = statistics.mean(row["losses"][:window])
        row["last_mean"] = statistics.mean(row["losses"][-window:])
        if plain["status"] == "ok":
            row["mean_abs_gap"] = statistics.mean(
                abs(x - y) for x, y in zip(row["losses"], plain["losses"], strict=True)
            )
            row["last_vs_plain"] = row["last_mean"] / statistics.mean(plain["losses"][-window:]) - 1
            row["matches_plain"] = abs(row["last_vs_plain"]) <= CONVERGE_TOLERANCE
    out = dict(card=b.card, attention=b.attention, resolution=res, steps=steps, window=window, rows=rows)
    out["ok"] = plain["status"] == "ok" and all(r["loss_finite"] for r in rows if r["status"] == "ok")
    return out
