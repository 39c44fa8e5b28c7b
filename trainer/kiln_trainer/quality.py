"""How close samples come to the training images, cheaply enough for every sample of a CPU run.

The colour histogram of an image at 64x64 (8 bins per RGB channel, 512 joint bins, summing to
1) and the L1 distance between two of them: 0 for the same colours in any arrangement, 2 for
colours that share no bin. Coarse on purpose: it says whether a LoRA moved samples towards the
photographed object's colours, which a model of a few thousand parameters can do, without a
feature network to download.
"""

import numpy as np
from PIL import Image

SIDE = 64
BINS = 8


def colour_histogram(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.uint8)
    index = (rgb // (256 // BINS)).astype(np.int64)
    flat = (index[..., 0] * BINS + index[..., 1]) * BINS + index[..., 2]
    return np.bincount(flat.ravel(), minlength=BINS**3).astype(np.float64) / flat.size


def mean_histogram(images) -> np.ndarray:
    """The training set's colours: the mean of its images' histograms (each image counts once)."""
    return np.mean([colour_histogram(im) for im in images], axis=0)


def histogram_l1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum())
