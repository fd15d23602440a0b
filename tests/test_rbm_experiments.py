"""The RBM experiments' own pieces: the digits augmentation of scikit-learn's example and the
completion mask, checked against direct constructions."""
from __future__ import annotations

import numpy as np

from experiment_scripts import load

nudge = load("rbm_digits").nudge
completion_mask = load("rbm_fashion").completion_mask


def shifted(img, dy, dx):
    """img moved by (dy, dx) pixels, zero-filled."""
    out = np.zeros_like(img)
    h, w = img.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_nudge_appends_the_four_one_pixel_shifts():
    x = np.random.default_rng(0).integers(0, 17, (3, 64)).astype(np.float32)
    got = nudge(x).reshape(5, 3, 8, 8)
    np.testing.assert_array_equal(got[0], x.reshape(3, 8, 8))
    for block, (dy, dx) in enumerate([(-1, 0), (0, -1), (0, 1), (1, 0)], start=1):
        for i in range(3):
            np.testing.assert_array_equal(got[block, i], shifted(x[i].reshape(8, 8), dy, dx))


def test_completion_mask_clamps_the_top_rows():
    m = completion_mask((4, 3), observed_rows=1)
    np.testing.assert_array_equal(m, [1, 1, 1] + [0] * 9)
