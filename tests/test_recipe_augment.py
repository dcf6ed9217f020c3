"""The speed record's augmentation: reflection padding, random translation and
alternating flips, against NumPy (np.pad's 'reflect') and by identifying each
output image's source."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet.augment import (
    AlternatingFlip,
    Compose,
    RandomCropFlip,
    RandomTranslate,
    reflect_pad,
)
from xpnet.errors import InputError


def images(n=6, c=2, h=5, w=4):
    """Every pixel distinct and nonzero, so a crop's source can be identified."""
    return np.arange(n * c * h * w, dtype=np.float64).reshape(n, c, h, w) + 1.0


@pytest.mark.parametrize("pad", [0, 1, 2, 3])
def test_reflect_pad_is_numpys_reflect(backend, pad):
    x = images()
    got = xpnet.to_numpy(reflect_pad(backend.asarray(x), pad))
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)),
                                              mode="reflect"))


def test_reflect_pad_refuses_a_pad_as_large_as_the_image(backend):
    with pytest.raises(InputError, match="smaller than the image"):
        reflect_pad(backend.asarray(images(w=2)), 2)


def test_translations_are_crops_of_the_reflected_image(backend):
    x = images(n=64, h=6, w=5)
    out = xpnet.to_numpy(RandomTranslate(2)(backend.asarray(x), backend.new_stream(0)))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    offsets = set()
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 5])]
        assert found, f"image {i} is no crop of its reflected image"
        offsets.update(found)
    # no mirror images, and with 64 images many of the 25 shifts occur (zeros would
    # have shown up as a missing crop: nothing is zero in these images)
    assert len(offsets) > 12
    assert np.all(out != 0)


def test_random_crop_flip_with_reflection_padding(backend):
    x = images(n=20)
    aug = RandomCropFlip(pad=1, flip=True, padding="reflect")
    assert aug.config == {"pad": 1, "flip": True, "padding": "reflect"}
    out = xpnet.to_numpy(aug(backend.asarray(x), backend.new_stream(1)))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    for i in range(len(x)):
        crops = [padded[i, :, dy:dy + 5, dx:dx + 4] for dy in range(3) for dx in range(3)]
        assert any(np.array_equal(out[i], c) or np.array_equal(out[i], c[:, :, ::-1])
                   for c in crops)
    with pytest.raises(InputError, match="padding"):
        RandomCropFlip(padding="wrap")


def mirrored_in(out, x):
    """Per image: True when ``out`` is its mirror, False when it is unchanged."""
    flags = []
    for o, s in zip(out, x, strict=True):
        if np.array_equal(o, s):
            flags.append(False)
        else:
            assert np.array_equal(o, s[:, :, ::-1]), "neither the image nor its mirror"
            flags.append(True)
    return np.array(flags)


def run_epoch(aug, backend, x, epoch, stream, batch=4, seed=0):
    """All images once, in shuffled minibatches, as ``augment(x, stream, indices=...)``."""
    order = np.random.default_rng(seed + epoch).permutation(len(x))
    flags = np.zeros(len(x), dtype=bool)
    for start in range(0, len(x), batch):
        idx = order[start:start + batch]
        out = aug(backend.asarray(x[idx]), stream, indices=backend.asarray(idx),
                  epoch=epoch, num_samples=len(x))
        flags[idx] = mirrored_in(xpnet.to_numpy(out), x[idx])
    return flags


def test_alternating_flip_shows_each_image_once_each_way_over_two_epochs(backend):
    x = images(n=24)
    aug = AlternatingFlip()
    stream = backend.new_stream(5)
    epochs = [run_epoch(aug, backend, x, e, stream) for e in range(4)]
    # epoch 0 is random: some images mirrored, some not
    assert 0 < epochs[0].sum() < len(x)
    for e in range(3):
        np.testing.assert_array_equal(epochs[e + 1], ~epochs[e])
    # an image drawn twice in one epoch is mirrored the same way both times
    idx = backend.asarray(np.array([3, 3, 7]))
    out = xpnet.to_numpy(aug(backend.asarray(x[[3, 3, 7]]), stream, indices=idx, epoch=2,
                             num_samples=len(x)))
    flags = mirrored_in(out, x[[3, 3, 7]])
    assert flags[0] == flags[1] == epochs[2][3] and flags[2] == epochs[2][7]


def test_alternating_flip_with_a_seed_is_reproducible(backend):
    x = images(n=10)
    a = run_epoch(AlternatingFlip(seed=3), backend, x, 0, backend.new_stream(0))
    b = run_epoch(AlternatingFlip(seed=3), backend, x, 0, backend.new_stream(99))
    np.testing.assert_array_equal(a, b)


def test_compose_gives_indices_only_to_those_that_use_them(backend):
    x = images(n=8, h=6, w=5)
    aug = Compose(AlternatingFlip(seed=0), RandomTranslate(1))
    assert aug.uses_indices
    idx = np.arange(8)
    out = xpnet.to_numpy(aug(backend.asarray(x), backend.new_stream(2),
                             indices=backend.asarray(idx), epoch=1, num_samples=8))
    flips = xpnet.to_numpy(AlternatingFlip(seed=0).flips(backend.asarray(idx), 1, 8, None))
    for i in range(8):
        src = x[i][:, :, ::-1] if flips[i] else x[i]
        padded = np.pad(src, ((0, 0), (1, 1), (1, 1)), mode="reflect")
        assert any(np.array_equal(out[i], padded[:, dy:dy + 6, dx:dx + 5])
                   for dy in range(3) for dx in range(3))
    with pytest.raises(InputError, match="indices"):
        AlternatingFlip()(backend.asarray(x), backend.new_stream(0),
                          indices=backend.asarray(idx[:3]), epoch=0, num_samples=8)
