"""Captions from a local vision-language model: `caption --spec FILE`.

Any image-text-to-text model that transformers loads with AutoProcessor and
AutoModelForImageTextToText from a local folder (BLIP, Florence, Qwen-VL, ...). The prompt
steers the caption; the service adds the trigger word afterwards."""

import logging

import torch

from . import models
from .events import emit

log = logging.getLogger("kiln.caption")


def run(spec, stop):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = models.pick_device(spec.device)
    try:
        processor = AutoProcessor.from_pretrained(spec.model_path)
        model = AutoModelForImageTextToText.from_pretrained(spec.model_path).to(device).eval()
    except Exception as e:
        raise models.ModelError(
            f"cannot load the captioning model in {spec.model_path}: {type(e).__name__}: {e}", "spec.model_path"
        ) from e
    log.info("captioning %d images with %s on %s", len(spec.images), spec.model_path, device)
    done = 0
    for path in spec.images:
        if stop.is_set():
            return done
        with Image.open(path) as im:
            image = im.convert("RGB")
        inputs = processor(images=image, text=spec.prompt or None, return_tensors="pt").to(device)
        with torch.no_grad():
            ids = model.generate(**inputs, max_new_tokens=spec.max_new_tokens)
        # decoder-only VLMs echo the prompt; keep only what was generated after it
        prompt_len = (
            inputs["input_ids"].shape[1] if "input_ids" in inputs and not model.config.is_encoder_decoder else 0
        )
        text = processor.decode(ids[0][prompt_len:], skip_special_tokens=True).strip()
        emit("caption", path=path, caption=text)
        done += 1
    emit("completed", captions=done)
    return done
