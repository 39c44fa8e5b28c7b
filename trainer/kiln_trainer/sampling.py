"""One sampler for both training previews and `generate`: FluxPipeline's own Euler loop,
fed precomputed prompt embeddings so training never has to reload the text encoders."""

import os

import torch

from . import numerics


def make_pipeline(transformer, vae, scheduler, text=None):
    from diffusers import FluxPipeline

    text = text or dict(text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None)
    pipe = FluxPipeline(transformer=transformer, vae=vae, scheduler=scheduler, **text)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def render(pipe, embeds, width, height, steps, guidance, seed, device, dtype):
    """embeds: (T5 sequence [L, D], CLIP pooled [P]) for one prompt. Returns a PIL image.
    The generator lives on the CPU so a seed gives the same image on any device."""
    seq, pooled = embeds
    was_training = pipe.transformer.training
    pipe.transformer.eval()
    try:
        g = torch.Generator("cpu").manual_seed(seed)
        with numerics.autocast(device, dtype):
            out = pipe(
                prompt_embeds=seq[None].to(device, dtype),
                pooled_prompt_embeds=pooled[None].to(device, dtype),
                width=width,
                height=height,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=g,
                output_type="pil",
            )
        return out.images[0]
    finally:
        pipe.transformer.train(was_training)


def save_png(image, path):
    tmp = f"{path}.tmp-{os.getpid()}.png"
    image.save(tmp)
    os.replace(tmp, path)  # readers never see a half-written PNG
    return path


def generate(spec, stop=None):
    """The `generate` command: base model + LoRAs -> PNGs, one `image` event each."""
    import time

    from . import models, tiny
    from .events import emit

    t0 = time.time()
    device = models.pick_device(spec.device)
    dtype = numerics.compute_dtype(spec.dtype, device)
    numerics.configure_attention()
    source, builtin = models.resolve(spec.base_model_path)
    if builtin and device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # see train.run
    width, height = spec.width or (tiny.SIZE if builtin else 512), spec.height or (tiny.SIZE if builtin else 512)
    steps = spec.steps or (tiny.SAMPLE_STEPS if builtin else 28)
    pipe = models.load_pipeline(source, dtype)
    pipe.set_progress_bar_config(disable=True)
    names = []
    for i, lora in enumerate(spec.loras):
        pipe.load_lora_weights(lora.path, adapter_name=f"lora{i}")
        names.append(f"lora{i}")
    if names:
        pipe.set_adapters(names, [lora.scale for lora in spec.loras])
    text = {k: getattr(pipe, k) for k in ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")}
    embeds = models.encode_prompts(text, spec.prompts, device)
    pipe.to(device)
    os.makedirs(spec.output_dir, exist_ok=True)
    paths, k = [], 0
    for p, (prompt, emb) in enumerate(zip(spec.prompts, embeds, strict=True)):
        for j in range(spec.num_images):
            if stop is not None and stop.is_set():
                emit("cancelled", step=k)  # step = images finished
                return
            seed = spec.seed + k
            img = render(pipe, emb, width, height, steps, spec.guidance_scale, seed, device, dtype)
            path = save_png(img, os.path.join(os.path.abspath(spec.output_dir), f"image_{p:03d}_{j:03d}.png"))
            emit("image", path=path, prompt=prompt, index=k, seed=seed)
            paths.append(path)
            k += 1
    emit("completed", images=paths, wall_seconds=round(time.time() - t0, 3))
