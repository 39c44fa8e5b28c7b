"""FLUX rectified-flow fine-tuning, top to bottom: load data and encoders, cache,
drop encoders, train the transformer (LoRA or full), checkpoint, sample, export.

Resume is exact because nothing random depends on history: the batch for step k comes
from a (seed, epoch) permutation and the noise/timesteps from a (seed, step) generator;
weights, optimizer and LR-scheduler state come from the checkpoint."""

import contextlib
import errno
import gc
import json
import logging
import os
import random
import shutil
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import blocks, data, flat, fp8, lora, memory, models, numerics, quality, sampling, tiny
from .events import emit
from .spec import SpecError, to_dict

log = logging.getLogger("kiln.train")


class Cancelled(Exception):
    pass


# ----------------------------------------------------------------------------- loss


def flow_loss(transformer, x0, seq, pooled, noise, sigmas, guidance):
    """MSE, in fp32, between the predicted and true velocity (noise - x0) at
    x_t = (1-s) x0 + s noise. The transformer takes s in [0, 1]: FluxPipeline passes
    timestep/1000 with timestep = 1000 s. Inputs meet the model in its own dtype."""
    from diffusers import FluxPipeline

    b, c, h, w = x0.shape
    dt = numerics.input_dtype(transformer)
    s = sigmas.view(b, 1, 1, 1)
    xt = (1 - s) * x0 + s * noise

    def pack(z):
        return FluxPipeline._pack_latents(z, b, c, h, w)

    img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, x0.device, x0.dtype)
    txt_ids = torch.zeros(seq.shape[1], 3, device=x0.device, dtype=x0.dtype)
    g = None if guidance is None else torch.full((b,), float(guidance), device=x0.device, dtype=torch.float32)
    pred = transformer(
        hidden_states=pack(xt).to(dt),
        encoder_hidden_states=seq.to(dt),
        pooled_projections=pooled.to(dt),
        timestep=sigmas,
        img_ids=img_ids,
        txt_ids=txt_ids,
        guidance=g,
        return_dict=False,
    )[0]
    return F.mse_loss(pred.float(), pack(noise - x0).float())


def forward_backward(transformer, x0, seq, pooled, noise, sigmas, guidance, dtype, scale=1.0):
    """One micro-batch under the dtype policy; gradients accumulate into the fp32 weights."""
    with numerics.autocast(x0.device, dtype):
        loss = flow_loss(transformer, x0, seq, pooled, noise, sigmas, guidance)
    (loss * scale).backward()
    return loss.item()


def optimizer_step(params, opt, guard, step, loss, poison=False):
    """Clip, then update only if the loss and the gradient norm are finite (the guard decides,
    and fails the run when skipping is no longer a fix). Returns whether the update ran."""
    if poison:
        numerics.poison_grads(params)
    norm = torch.nn.utils.clip_grad_norm_(params, numerics.MAX_GRAD_NORM)
    applied = guard.allows(step, loss, norm)
    if applied:
        opt.step()
    opt.zero_grad(set_to_none=not flat.is_flat(params))
    return applied


def step_noise(seed, step, micro, shape):
    """Noise and logit-normal timesteps for one micro-batch, a pure function of its position."""
    g = torch.Generator("cpu").manual_seed(seed * 1_000_003 + step * 1009 + micro)
    noise = torch.randn(shape, generator=g)
    sigmas = torch.sigmoid(torch.randn(shape[0], generator=g))  # logit-normal: mid-noise levels matter most
    return noise, sigmas


def guidance_value(spec, transformer):
    if not transformer.config.guidance_embeds:
        return None
    # FLUX-dev's guidance embedder has no "off" input; bypass feeds 0 so the LoRA learns
    # without tying itself to a CFG strength
    return 0.0 if spec.bypass_guidance_embedding else spec.guidance_scale


# ----------------------------------------------------------------------------- optimizer


def make_optimizer(name, params, lr, seed=0):
    """Returns (optimizer, the name of what really runs). Never falls back quietly: a memory
    plan made for 8-bit state must not meet 32-bit state on the card. bf16 trained weights (a
    FULL run where fp32 ones do not fit) get adamw8bit's updates rounded stochastically."""
    if name == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except Exception as e:
            raise SpecError(
                [
                    (
                        "optimizer",
                        f"adamw8bit needs bitsandbytes (pinned in trainer/requirements.txt), "
                        f"which does not import here: {type(e).__name__}: {e}; "
                        "install it or choose adamw",
                    )
                ]
            ) from e
        if any_bf16(params):
            from .rounding import AdamW8bitBf16

            return AdamW8bitBf16(params, seed=seed, lr=lr, weight_decay=1e-4), "adamw8bit"
        return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=1e-4), "adamw8bit"
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=1e-4), "adamw"
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=lr, relative_step=False, scale_parameter=False, warmup_init=False), "adafactor"
    try:
        from prodigyopt import Prodigy
    except ImportError as e:
        raise SpecError(
            [
                (
                    "optimizer",
                    "prodigy needs the 'prodigyopt' package, which is not installed; "
                    "pip install prodigyopt or choose adamw/adamw8bit/adafactor",
                )
            ]
        ) from e
    return Prodigy(params, lr=lr, weight_decay=1e-4), "prodigy"


def weight_rounding(opt):
    """How the optimizer rounds updated bf16 trained weights: None where none is bf16 (LoRA, fp32
    master weights)."""
    if any_bf16(p for group in opt.param_groups for p in group["params"]):
        return getattr(opt, "rounding", "nearest")
    return None


def any_bf16(params):
    return any(p.dtype == torch.bfloat16 for p in params)


def warmup_steps(total):
    return min(100, max(1, total // 20))


# ----------------------------------------------------------------------------- checkpoints


def list_checkpoints(ckdir):
    if not os.path.isdir(ckdir):
        return []
    names = [n for n in os.listdir(ckdir) if n.startswith("step_") and n[5:].isdigit()]
    return [os.path.join(ckdir, n) for n in sorted(names, key=lambda n: int(n[5:]))]


def save_checkpoint(ckdir, step, named_params, opt, sched, spec, position, last_loss, skipped):
    from safetensors.torch import save_file

    numerics.assert_finite(named_params, f"the step {step} checkpoint")
    final = os.path.join(ckdir, f"step_{step:06d}")
    tmp = os.path.join(ckdir, f".tmp-step_{step:06d}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        save_file(
            {n: p.detach().cpu().contiguous() for n, p in named_params}, os.path.join(tmp, "trainable.safetensors")
        )
        state = {
            "step": step,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "last_loss": last_loss,
            "skipped_steps": list(skipped),
            "data": position,
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }
        torch_save(state, os.path.join(tmp, "state.pt"))
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump(to_dict(spec), f, indent=2)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # on a full disk, give back what the cut save took
        raise
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)  # a step_* folder is always complete
    for old in list_checkpoints(ckdir)[: -spec.max_step_saves_to_keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path, named_params, opt, sched):
    """Restores weights, optimizer, scheduler and RNGs; returns the saved training state."""
    from safetensors.torch import load_file

    weights = load_file(os.path.join(path, "trainable.safetensors"))
    params = dict(named_params)
    if set(weights) != set(params):
        raise RuntimeError(
            f"checkpoint {path} does not match the model being trained "
            f"({len(weights)} tensors vs {len(params)} trainable); delete it or set resume=false"
        )
    try:
        numerics.assert_finite(weights.items(), "a resume")
    except numerics.NonFinite as e:
        raise numerics.NonFinite(
            f"checkpoint {path} holds non-finite weights ({e}); it cannot be resumed: delete it or set resume=false"
        ) from None
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
    state = torch.load(os.path.join(path, "state.pt"), weights_only=False)
    try:
        opt.load_state_dict(state["optimizer"])
    except ValueError as e:
        raise RuntimeError(
            f"checkpoint {path} holds optimizer state for other parameters than this run's ({e}); "
            "was it written with another optimizer or flat_lora? delete it or set resume=false"
        ) from None
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return {"step": state["step"], "last_loss": state["last_loss"], "skipped_steps": state.get("skipped_steps", [])}


def atomic_torch_save(obj, path):
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch_save(obj, tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    os.replace(tmp, path)


# Free bytes under which a failed torch.save is taken to be the disk's refusal.
NEARLY_FULL_BYTES = 16 * 2**20


def torch_save(obj, path):
    """torch.save, with a write the disk refused raised as the OSError it was: torch's zip
    writer reports one without its errno ("unexpected pos 704 vs 598"), so the disk is asked."""
    try:
        torch.save(obj, path)
    except RuntimeError as e:
        disk = os.statvfs(os.path.dirname(path) or ".")
        if disk.f_bavail * disk.f_frsize < NEARLY_FULL_BYTES:
            raise OSError(errno.ENOSPC, f"No space left on device while writing {path}") from e
        raise


# ----------------------------------------------------------------------------- run


def run(spec, stop):
    t_start = time.time()
    torch.manual_seed(spec.seed)
    random.seed(spec.seed)
    np.random.seed(spec.seed % 2**32)
    device = models.pick_device(spec.device)
    dtype = numerics.compute_dtype(spec.dtype, device)
    attention = numerics.configure_attention()
    faults = numerics.fault_steps()
    slowest_step = numerics.fault_step_seconds()
    work = os.path.abspath(spec.work_dir)
    ckdir, sdir, odir, cdir = (os.path.join(work, d) for d in ("checkpoints", "samples", "output", "cache"))
    for d in (ckdir, sdir, odir, cdir):
        os.makedirs(d, exist_ok=True)
    for n in os.listdir(ckdir):  # leftovers of a crash mid-save
        if n.startswith(".tmp-"):
            shutil.rmtree(os.path.join(ckdir, n), ignore_errors=True)

    # -- data and caches (encoders live only inside this block)
    items = data.list_images(spec.dataset_dir, spec.trigger_word)
    sizes = data.check_images(items)
    source, builtin = models.resolve(spec.base_model_path)
    if builtin and device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # tiny matmuls gain nothing from threads and stall badly on a busy host
    plan = memory.for_run(spec, source, device, dtype)  # before anything large is loaded
    log.info("memory plan: %s", plan["reason"])
    if not plan["feasible"]:
        raise memory.DoesNotFit(plan["reason"])
    if plan["quantize"] == "fp8":
        fp8.require(device)
    model_key = (
        spec.base_model_path,
        tiny.fingerprint() if builtin else os.path.abspath(source) if os.path.isdir(source) else source,
    )
    prompts = [p.replace("[trigger]", spec.trigger_word) for p in spec.sample_prompts]
    captions = [c for _, c in items]
    lat_path = os.path.join(
        cdir, f"latents-{data.fingerprint(items, model_key, spec.resolution, data.MAX_ENLARGEMENT)}.pt"
    )
    txt_path = os.path.join(cdir, f"text-{data.fingerprint([], model_key, captions, prompts)}.pt")
    latents = torch.load(lat_path) if spec.cache_latents and os.path.isfile(lat_path) else None
    text = torch.load(txt_path) if spec.cache_text_embeddings and os.path.isfile(txt_path) else None
    log.info(
        "dataset: %d images; latents %s, text %s",
        len(items),
        "cached" if latents else "to encode",
        "cached" if text else "to encode",
    )
    if text is None:
        enc = models.load_text(source, dtype)
        embeds = models.encode_prompts(enc, captions + prompts, device)
        text = {"captions": embeds[: len(captions)], "prompts": embeds[len(captions) :]}
        del enc, embeds
        if spec.cache_text_embeddings:
            atomic_torch_save(text, txt_path)
    vae = models.load_vae(source, dtype) if (latents is None or prompts) else None
    if latents is None:
        latents = data.encode_images(vae, items, spec.resolution, device, dtype)
        if spec.cache_latents:
            atomic_torch_save(latents, lat_path)
    if not prompts:
        vae = None
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if stop.is_set():  # report the step a resume would continue from
        done = list_checkpoints(ckdir) if spec.resume else []
        raise Cancelled(int(os.path.basename(done[-1])[5:]) if done else 0)

    # -- model
    transformer = models.load_transformer(source, dtype)
    quantized = 0
    if plan["quantize"]:
        from . import quantize

        quantized = quantize.quantized_layers(quantize.quantize_blocks(transformer, plan["quantize"], device, dtype))
    if spec.training_type == "LORA":
        params = lora.add_lora(transformer, spec.rank, spec.seed)
        if spec.init_lora:
            lora.load_init(transformer, spec.init_lora)
            log.info("continuing from the LoRA %s", spec.init_lora)
            emit("log", message=f"continuing from the LoRA {spec.init_lora}")
    else:
        transformer.requires_grad_(True)
        params = list(transformer.parameters())
        if plan["trainable_dtype"] == "fp32":  # else bf16 weights: fp32 master weights would not fit
            numerics.trainable_to_fp32(params)
    named = [(n, p) for n, p in transformer.named_parameters() if p.requires_grad]
    blocks.checkpoint_first(transformer, plan["checkpointed_blocks"])
    transformer.to(device).train()
    if spec.flat_lora:  # after the move to the device, which would copy each weight out of the buffer
        params = [flat.flatten(params)]
    if spec.compile:
        blocks.compile_each(transformer)
    opt, opt_name = make_optimizer(spec.optimizer, params, spec.learning_rate, spec.seed)
    rounding = weight_rounding(opt)
    if rounding == "nearest":
        emit(
            "log",
            message=f"bf16 trained weights with {opt_name}: updates under half a bf16 step are rounded away; "
            "adamw8bit rounds them stochastically",
        )
    warm = warmup_steps(spec.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / warm))
    guidance = guidance_value(spec, transformer)
    batches = data.Batches(latents, spec.batch_size, spec.seed)
    accum = spec.gradient_accumulation

    step, last_loss, skipped = 0, float("nan"), []
    existing = list_checkpoints(ckdir)
    if spec.resume and existing:
        state = load_checkpoint(existing[-1], named, opt, sched)
        step, last_loss, skipped = state["step"], state["last_loss"], state["skipped_steps"]
        log.info("resumed from %s (step %d)", existing[-1], step)
        emit("log", message=f"resumed from {existing[-1]} at step {step}")
    elif existing:  # resume=false means start over: stale higher-numbered saves would win rotation
        for old in existing:
            shutil.rmtree(old, ignore_errors=True)
        emit("log", message=f"resume=false: removed {len(existing)} old checkpoint(s)")
    start_step = step
    stack = numerics.versions(device)
    guard = numerics.Guard(numerics.describe(dtype, attention, stack), emit, skipped, first_step=step + 1)
    emit(
        "started",
        model=spec.base_model_path,
        device=str(device),
        dtype=numerics.dtype_name(dtype),
        trainable_parameters=sum(p.numel() for p in params),
        steps=spec.steps,
        start_step=start_step,
        training_type=spec.training_type,
        optimizer=opt_name,
        weight_rounding=rounding,
        attention=attention,
        memory_plan=plan,
        images=len(items),
        images_per_resolution=data.images_per_resolution(sizes, spec.resolution),
        quantized_layers=quantized,
        compiled=spec.compile,
        flat_lora=spec.flat_lora,
        torch_version=stack["torch"],
        cuda_version=stack["cuda"],
        cudnn_version=stack["cudnn"],
        versions=stack,
        load_seconds=round(time.time() - t_start, 3),
    )

    pipe = sampling.make_pipeline(transformer, vae.to(device), models.load_scheduler(source)) if prompts else None
    # Each sample's distance to the training images' colours (quality.py) rides on its event.
    dataset_colours = quality.mean_histogram(data.open_image(path) for path, _ in items) if prompts else None

    def make_samples(at):
        for i, (p, emb) in enumerate(zip(prompts, text["prompts"], strict=True)):
            t0 = time.time()
            img = sampling.render(
                pipe,
                emb,
                spec.sample_width,
                spec.sample_height,
                spec.sample_steps,
                spec.sample_guidance_scale,
                spec.seed + i,
                device,
                dtype,
            )
            path = sampling.save_png(img, os.path.join(sdir, f"step_{at}_{i}.png"))
            distance = round(quality.histogram_l1(quality.colour_histogram(img), dataset_colours), 4)
            emit("sample", step=at, prompt=p, path=path, seconds=round(time.time() - t0, 3), histogram_l1=distance)

    def checkpoint(at):
        path = save_checkpoint(
            ckdir, at, named, opt, sched, spec, batches.position(at * accum), last_loss, guard.skipped
        )
        emit("checkpoint", step=at, path=path)

    saved_at = step if existing and spec.resume else -1
    if pipe is not None and start_step == 0:
        make_samples(0)  # the base model's idea of each prompt: what the steps move away from
    while step < spec.steps:
        if stop.is_set():
            break
        t0 = time.time()
        total = 0.0
        for micro in range(accum):
            idx = batches.get(step * accum + micro)
            x0 = torch.stack([latents[j][1] for j in idx]).to(device)
            seq = torch.stack([text["captions"][latents[j][2]][0] for j in idx]).to(device)
            pooled = torch.stack([text["captions"][latents[j][2]][1] for j in idx]).to(device)
            noise, sigmas = step_noise(spec.seed, step, micro, x0.shape)
            total += (
                forward_backward(
                    transformer, x0, seq, pooled, noise.to(device), sigmas.to(device), guidance, dtype, scale=1 / accum
                )
                / accum
            )
        lr = opt.param_groups[0]["lr"]
        applied = optimizer_step(params, opt, guard, step + 1, total, poison=step + 1 in faults)
        sched.step()  # the schedule follows steps taken, skipped or not, so a resume lands on the same lr
        step += 1
        if applied:
            last_loss = total
        time.sleep(max(0.0, slowest_step - (time.time() - t0)))
        emit("step", step=step, total=spec.steps, loss=total, lr=lr, seconds_per_step=round(time.time() - t0, 4))
        if step % spec.save_every == 0 and step < spec.steps:
            checkpoint(step)
            saved_at = step
        if pipe is not None and step % spec.sample_every == 0 and step < spec.steps:
            make_samples(step)

    if step < spec.steps:  # stopped early: keep the progress, then report
        if step > saved_at and step > 0:
            checkpoint(step)
        raise Cancelled(step)

    if not np.isfinite(last_loss):
        raise numerics.NonFinite(f"no finite loss to report at step {step}; nothing was exported")
    if saved_at != step:
        checkpoint(step)
    if pipe is not None:
        make_samples(step)
    weights = export(spec, transformer, named, odir, step)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    emit(
        "completed",
        weights_path=weights,
        final_loss=last_loss,
        wall_seconds=round(time.time() - t_start, 3),
        steps=step,
        skipped_steps=len(guard.skipped),
        attention=numerics.attention_backends(),
        peak_gpu_memory_gib=None if peak is None else round(peak, 3),
    )


def export(spec, transformer, named, odir, step):
    numerics.assert_finite(named, "the exported weights")
    if spec.training_type == "LORA":
        meta = {
            "base_model": spec.base_model_path,
            "trigger_word": spec.trigger_word,
            "rank": str(spec.rank),
            "alpha": str(spec.rank),
            "steps": str(step),
            "format": "diffusers-peft",
            "training_type": "LORA",
            "kiln_spec_version": "1",
        }
        return lora.save_lora(transformer, os.path.join(odir, "lora.safetensors"), spec.rank, meta)
    final = os.path.join(odir, "transformer")
    tmp = os.path.join(odir, f".tmp-transformer-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    transformer.disable_gradient_checkpointing()
    transformer.save_pretrained(tmp, safe_serialization=True)
    if os.path.exists(final):  # swap: a reader sees the old or the new folder, never a mix
        old = os.path.join(odir, f".old-transformer-{os.getpid()}")
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    return final
