"""Small made-up datasets for checks that must run anywhere, a CPU included."""

import os

import numpy as np
from PIL import Image


def bands(folder, n=4, size=64, caption="a photo of [trigger] bands", seed=0):
    """A distinctive pattern: red horizontal bands crossed by blue vertical bands, with a
    little per-image noise so no two images are byte-identical. Every other image gets a
    same-name caption file; the rest fall back to the trigger word."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    idx = (np.arange(size) // max(1, size // 8)) % 2 == 0
    for i in range(n):
        a = np.zeros((size, size, 3), np.int32)
        a[idx] = [255, 40, 40]
        a[:, idx, 2] = 255
        a = np.clip(a + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(os.path.join(folder, f"img{i}.png"))
        if caption and i % 2 == 0:
            with open(os.path.join(folder, f"img{i}.txt"), "w") as f:
                f.write(caption)
    return str(folder)
