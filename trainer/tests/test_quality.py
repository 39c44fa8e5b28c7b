"""The sample-quality metric: colour histograms (8 bins per channel at 64x64) and their L1 distance."""

import numpy as np
from PIL import Image

from kiln_trainer import quality


def solid(colour, size=(96, 80)):
    return Image.new("RGB", size, colour)


def test_a_histogram_is_512_bins_that_sum_to_one_whatever_the_size():
    for size in [(64, 64), (300, 17), (1, 1)]:
        h = quality.colour_histogram(solid((200, 30, 30), size))
        assert h.shape == (512,) and np.isclose(h.sum(), 1.0)
        assert h.argmax() == (6 * 8 + 0) * 8 + 0  # 200 // 32 = 6 red, 0 green, 0 blue


def test_same_colours_are_0_apart_disjoint_ones_2_and_half_overlap_1():
    red, white = solid((220, 20, 20)), solid((250, 250, 250))
    assert quality.histogram_l1(quality.colour_histogram(red), quality.colour_histogram(red)) == 0.0
    assert quality.histogram_l1(quality.colour_histogram(red), quality.colour_histogram(white)) == 2.0
    half = Image.new("RGB", (64, 64), (250, 250, 250))
    half.paste(red.resize((32, 64)), (0, 0))
    assert np.isclose(quality.histogram_l1(quality.colour_histogram(half), quality.colour_histogram(red)), 1.0)


def test_the_training_set_counts_each_image_once():
    red, white = solid((220, 20, 20)), solid((250, 250, 250), size=(500, 500))
    mean = quality.mean_histogram([red, white])
    assert np.isclose(quality.histogram_l1(quality.colour_histogram(red), mean), 1.0)
    assert np.isclose(quality.histogram_l1(quality.colour_histogram(white), mean), 1.0)
