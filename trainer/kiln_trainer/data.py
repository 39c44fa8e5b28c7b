"""Dataset folder -> aspect buckets -> cached latents and text embeddings.

Nothing is augmented, so every image is encoded exactly once per (bucket, model) and the
encoders can leave memory before the first training step."""

import hashlib
import logging
import math
import os

import numpy as np
import torch
from PIL import Image, ImageOps

log = logging.getLogger("kiln.data")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")


class DatasetError(Exception):
    def __init__(self, message, where):
        super().__init__(message)
        self.where = where


def list_images(dataset_dir, trigger_word):
    """[(image path, caption)] sorted by name; manifest.json and other files are ignored."""
    items = []
    for name in sorted(os.listdir(dataset_dir)):
        path = os.path.join(dataset_dir, name)
        stem, ext = os.path.splitext(name)
        if name.startswith(".") or ext.lower() not in IMAGE_EXTS or not os.path.isfile(path):
            continue
        cap_path = os.path.join(dataset_dir, stem + ".txt")
        caption = trigger_word
        if os.path.isfile(cap_path):
            with open(cap_path, encoding="utf-8", errors="replace") as f:
                caption = f.read().strip() or trigger_word
        items.append((path, caption.replace("[trigger]", trigger_word)))
    if not items:
        raise DatasetError(f"no images ({', '.join(IMAGE_EXTS)}) in {dataset_dir}", dataset_dir)
    return items


def buckets_for(base):
    """(w, h) pairs, multiples of 16, area close to base^2, aspect between 1:2 and 2:1."""
    out = set()
    for h in range(max(16, base // 2 // 16 * 16), 2 * base + 1, 16):
        w = max(16, round(base * base / h / 16) * 16)
        if base // 2 <= w <= 2 * base:
            out.add((w, h))
    return sorted(out)


def pick_bucket(width, height, base):
    a = math.log(width / height)
    return min(buckets_for(base), key=lambda b: (abs(math.log(b[0] / b[1]) - a), -b[0] * b[1]))


# An image trains at a base resolution only if its bucket enlarges it at most this much: more
# would teach the model the blur of the enlargement at that size (ai-toolkit leaves out images
# smaller than a resolution; kohya has bucket_no_upscale). The slack keeps photos that a dataset
# cap left a little under a bucket.
MAX_ENLARGEMENT = 1.25


def enlargement(width, height, base):
    w, h = pick_bucket(width, height, base)
    return max(w / width, h / height)


def resolutions_for(width, height, resolutions):
    """The base resolutions an image trains at: the smallest always, and each larger one it fills."""
    smallest = min(resolutions)
    return [b for b in resolutions if b == smallest or enlargement(width, height, b) <= MAX_ENLARGEMENT]


def open_image(path):
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return im.convert("RGB")
    except Exception as e:
        name = os.path.basename(path)
        raise DatasetError(f"cannot read image {name}: {type(e).__name__}: {e}", path) from e


def fit(im, w, h):
    """Resize to cover (w, h), then center-crop; returns a [-1, 1] CHW tensor."""
    s = max(w / im.width, h / im.height)
    rw, rh = max(w, math.ceil(im.width * s)), max(h, math.ceil(im.height * s))
    im = im.resize((rw, rh), Image.BICUBIC)
    left, top = (rw - w) // 2, (rh - h) // 2
    im = im.crop((left, top, left + w, top + h))
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)


def fingerprint(items, *extra):
    h = hashlib.sha256()
    for path, caption in items:
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
        h.update(caption.encode())
    for e in extra:
        h.update(repr(e).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_images(vae, items, resolutions, device, dtype):
    """[(bucket, latent CHW fp32, caption index)] for every image x base resolution it fills.
    Uses the posterior mean: deterministic caches, and the VAE sampling noise is tiny
    compared to the flow-matching noise anyway."""
    vae.to(device)
    sf, shift = vae.config.scaling_factor, vae.config.shift_factor or 0.0
    out = []
    for i, (path, _) in enumerate(items):
        im = open_image(path)
        bases = resolutions_for(im.width, im.height, resolutions)
        if len(bases) < len(resolutions):
            left_out = ", ".join(
                f"{b} px would enlarge it {enlargement(im.width, im.height, b):.2f}x"
                for b in resolutions
                if b not in bases
            )
            log.info(
                "%s (%dx%d) trains at %s px only: %s",
                os.path.basename(path),
                im.width,
                im.height,
                "/".join(map(str, bases)),
                left_out,
            )
        for base in bases:
            w, h = pick_bucket(im.width, im.height, base)
            x = fit(im, w, h)[None].to(device, dtype)
            lat = vae.encode(x).latent_dist.mode()
            out.append(((w, h), ((lat.float() - shift) * sf)[0].cpu(), i))
    return out


def check_images(items):
    """Opens every image, so a broken one fails the run before a model loads; returns their sizes."""
    return [open_image(path).size for path, _ in items]


def images_per_resolution(sizes, resolutions):
    """{base resolution: how many of the images train at it}."""
    return {b: sum(b in resolutions_for(w, h, resolutions) for w, h in sizes) for b in resolutions}


class Batches:
    """Deterministic batch order: epoch e is a pure function of (seed, e), so the batch for
    any global index is known without replaying the run (this is what makes resume exact)."""

    def __init__(self, latents, batch_size, seed):
        """`latents` is what `encode_images` returns; a batch is a list of indices into it."""
        self.latents, self.seed = latents, seed
        by_bucket = {}
        for j, (bucket, _, _) in enumerate(latents):
            by_bucket.setdefault(bucket, []).append(j)
        self.groups = [by_bucket[k] for k in sorted(by_bucket)]
        self.batch_size = batch_size
        self.per_epoch = sum(math.ceil(len(g) / batch_size) for g in self.groups)
        self._epoch, self._order = None, None

    def _plan(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for g in self.groups:
            g = [g[k] for k in rng.permutation(len(g))]
            # a short bucket still yields a (smaller) batch rather than dropping images
            batches += [g[k : k + self.batch_size] for k in range(0, len(g), self.batch_size)]
        return [batches[k] for k in rng.permutation(len(batches))]

    def position(self, index):
        return {"epoch": index // self.per_epoch, "batch_in_epoch": index % self.per_epoch}

    def get(self, index):
        epoch = index // self.per_epoch
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self._plan(epoch)
        return self._order[index % self.per_epoch]
