"""RandAugment / AutoAugment v0 ops against independent computations (PIL, numpy), quirks of the reference
included, and the policies' determinism per seed."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from nas.train import augment as A

RNG = np.random.default_rng(7)
# Mid-range values (not 0..255 flat) so that AutoContrast and Equalize have something to stretch.
IMAGE = RNG.integers(30, 220, size=(12, 10, 3), dtype=np.uint8)
IMAGE[0, 0] = (255, 0, 128)


def ours(fn, *args):
    return fn(tf.constant(IMAGE), *args).numpy()


def pil(fn, *args):
    return np.asarray(fn(Image.fromarray(IMAGE), *args))


def test_pixel_ops_equal_pil():
    np.testing.assert_array_equal(ours(A.invert), pil(ImageOps.invert))
    for threshold in (0, 76, 128, 204):
        np.testing.assert_array_equal(ours(A.solarize, threshold), pil(ImageOps.solarize, threshold))
    for bits in (1, 2, 4, 8):
        np.testing.assert_array_equal(ours(A.posterize, bits), pil(ImageOps.posterize, bits))
    np.testing.assert_array_equal(ours(A.brightness, 1.9), pil(lambda im: ImageEnhance.Brightness(im).enhance(1.9)))
    np.testing.assert_array_equal(ours(A.brightness, 0.4), pil(lambda im: ImageEnhance.Brightness(im).enhance(0.4)))
    # PIL's autocontrast computes the same per-channel stretch (integer LUT from float arithmetic).
    diff = ours(A.autocontrast).astype(int) - pil(ImageOps.autocontrast).astype(int)
    assert np.abs(diff).max() <= 1 and (diff == 0).mean() > 0.95
    assert ours(A.autocontrast)[..., 1].min() == 0 and ours(A.autocontrast)[..., 1].max() == 255


def test_reference_quirks_where_pil_differs():
    # Solarize at level 10: threshold 256, 0 as uint8 in the TF1 graph -> every pixel inverted.
    np.testing.assert_array_equal(A.apply_op("Solarize", tf.constant(IMAGE), 10.0, [0, 0]).numpy(), 255 - IMAGE)
    # Posterize with 0 bits: TF clamps the shift of 8 to 7 -> only the top bit survives (PIL: black).
    np.testing.assert_array_equal(ours(A.posterize, 0), IMAGE & 0x80)
    # Contrast's "mean" is the pixel count / 256 (120 pixels -> 0.47 -> grey 0), not the mean grey.
    grey = np.full(IMAGE.shape, int(IMAGE.shape[0] * IMAGE.shape[1] / 256), np.uint8)
    expected = np.clip(grey + 1.9 * (IMAGE.astype(np.float32) - grey), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(ours(A.contrast, 1.9), expected)


def _equalize_reference(channel):
    """autoequalize of the reference written out in numpy: step = (count - last nonzero bin) // 255."""
    hist = np.bincount(channel.ravel(), minlength=256)
    step = (hist.sum() - hist[np.nonzero(hist)[0][-1]]) // 255
    if step == 0:
        return channel
    lut = np.clip(np.concatenate([[0], ((np.cumsum(hist) + step // 2) // step)[:-1]]), 0, 255)
    return lut[channel].astype(np.uint8)


def test_equalize():
    big = RNG.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)  # enough pixels for step > 0
    got = A.equalize(tf.constant(big)).numpy()
    np.testing.assert_array_equal(got, np.stack([_equalize_reference(big[..., c]) for c in range(3)], 2))
    # PIL divides by 256, not 255: nearly the same mapping.
    assert np.abs(got.astype(int) - np.asarray(ImageOps.equalize(Image.fromarray(big))).astype(int)).max() <= 2
    np.testing.assert_array_equal(A.equalize(tf.constant(IMAGE[:2, :2])).numpy(), IMAGE[:2, :2])  # step 0


def test_enhance_ops_near_pil():
    # Color and Sharpness: PIL rounds its grey (ITU-R 601) and its smoothed image, the reference truncates
    # TF's rgb_to_grayscale / the float convolution; after the 1.9 blend that is at most 2 levels.
    for factor in (0.3, 1.9):
        for fn, enhancer in ((A.color, ImageEnhance.Color), (A.sharpness, ImageEnhance.Sharpness)):
            diff = ours(fn, factor).astype(int) - pil(lambda im: enhancer(im).enhance(factor)).astype(int)
            assert np.abs(diff).max() <= 2, (fn.__name__, factor)
    # Sharpness leaves the one-pixel border as it is, as PIL's 3x3 filter does.
    sharp = ours(A.sharpness, 1.9)
    np.testing.assert_array_equal(sharp[0], IMAGE[0])
    np.testing.assert_array_equal(sharp[:, -1], IMAGE[:, -1])
    smooth = np.asarray(Image.fromarray(IMAGE).filter(ImageFilter.SMOOTH)).astype(int)
    assert np.abs(ours(A.sharpness, 0.0).astype(int) - smooth).max() <= 1


def test_geometric_ops():
    square = RNG.integers(0, 256, size=(9, 9, 3), dtype=np.uint8)
    # 90 degrees counter-clockwise about the centre is numpy's rot90.
    np.testing.assert_array_equal(A.rotate(tf.constant(square), 90.0).numpy(), np.rot90(square))
    corners = A.rotate(tf.constant(square), 45.0).numpy()
    assert (corners[0, 0] == 128).all() and (corners[-1, -1] == 128).all()
    # Translate by 3: output x samples input x + 3, the vacated columns are grey.
    moved = A.translate_x(tf.constant(IMAGE), 3.0).numpy()
    np.testing.assert_array_equal(moved[:, :-3], IMAGE[:, 3:])
    assert (moved[:, -3:] == 128).all()
    moved = A.translate_y(tf.constant(IMAGE), -2.0).numpy()
    np.testing.assert_array_equal(moved[2:], IMAGE[:-2])
    assert (moved[:2] == 128).all()
    # Shear x by s: output (x, y) samples input (round(x + s * y), y), outside grey.
    s = 0.2
    expected = np.full_like(IMAGE, 128)
    for y in range(IMAGE.shape[0]):
        for x in range(IMAGE.shape[1]):
            src = int(np.floor(x + s * y + 0.5))
            if 0 <= src < IMAGE.shape[1]:
                expected[y, x] = IMAGE[y, src]
    np.testing.assert_array_equal(A.shear_x(tf.constant(IMAGE), s).numpy(), expected)
    np.testing.assert_array_equal(A.shear_y(tf.constant(IMAGE.transpose(1, 0, 2)), s).numpy(),
                                  expected.transpose(1, 0, 2))


def test_cutout_and_solarize_add():
    out = A.cutout(tf.constant(IMAGE), 3, tf.constant([1, 8])).numpy()
    mask = np.zeros(IMAGE.shape[:2], bool)
    mask[0:4, 5:10] = True  # rows 1-3..1+3 and columns 8-3..8+3, cut by the edges
    assert (out[mask] == 128).all()
    np.testing.assert_array_equal(out[~mask], IMAGE[~mask])
    added = np.where(IMAGE < 128, np.clip(IMAGE.astype(int) + 110, 0, 255), IMAGE).astype(np.uint8)
    np.testing.assert_array_equal(A.apply_op("SolarizeAdd", tf.constant(IMAGE), 10.0, [0, 0]).numpy(), added)


def test_policy_tables():
    assert len(A.RANDAUGMENT_OPS) == 16 and len(A.POLICY_V0) == 25
    assert all(len(sub) == 2 for sub in A.POLICY_V0)
    names = {name for sub in A.POLICY_V0 for name, _, _ in sub}
    assert names <= set(A.RANDAUGMENT_OPS) and {"Cutout", "Contrast", "Sharpness"}.isdisjoint(names)


def _policy(name):
    return (lambda image, seed: A.randaugment(image, seed, 2, 10.0)) if name == "randaugment" else A.autoaugment_v0


@pytest.mark.parametrize("policy", ["randaugment", "autoaugment"])
def test_policies_deterministic_per_seed_and_uint8(policy):
    fn = _policy(policy)  # eagerly: tf.switch_case runs only the chosen branch
    image = tf.constant(RNG.integers(0, 256, size=(16, 16, 3), dtype=np.uint8))
    outs = [fn(image, tf.constant([3, i], tf.int64)) for i in range(24)]
    np.testing.assert_array_equal(outs[5].numpy(), fn(image, tf.constant([3, 5], tf.int64)).numpy())
    assert all(o.dtype == tf.uint8 and o.shape == (16, 16, 3) for o in outs)
    assert len({o.numpy().tobytes() for o in outs}) >= 8  # different seeds choose different ops
    for op in A.RANDAUGMENT_OPS:  # every op runs at magnitude 10 and keeps uint8 [H, W, 3]
        out = A.apply_op(op, image, 10.0, tf.constant([1, 2], tf.int64))
        assert out.dtype == tf.uint8 and out.shape == (16, 16, 3), op


@pytest.mark.slow  # tracing 2 x 16 branches takes ~30 s on 2 shared cores
@pytest.mark.parametrize("policy", ["randaugment", "autoaugment"])
def test_policies_traced_equal_eager(policy):
    """In the input pipeline the policy runs as a graph: the same images as eagerly, static shape kept."""
    image = tf.constant(RNG.integers(0, 256, size=(16, 16, 3), dtype=np.uint8))
    seeds = tf.constant([[3, i] for i in range(6)], tf.int64)
    ds = tf.data.Dataset.from_tensor_slices(seeds).map(lambda s: _policy(policy)(image, s))
    assert ds.element_spec.shape == (16, 16, 3)
    for seed, out in zip(seeds, ds):
        np.testing.assert_array_equal(out.numpy(), _policy(policy)(image, seed).numpy())


@pytest.mark.slow  # traces the input pipeline with the policy: ~20-40 s on 2 shared cores
def test_train_dataset_with_randaugment_is_a_function_of_seed_and_epoch():
    """`train.augment: randaugment` through the real input pipeline: same (seed, epoch) -> same batch."""
    import dataclasses

    from nas.train import data
    from nas.train.recipe import TrainConfig, resolve
    from tests.export_helpers import tiny_spec

    images = RNG.integers(0, 256, size=(64, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(64) % 2
    recipe, line = resolve(TrainConfig(augment="randaugment", batch_size=32, epochs=2), len(labels))
    assert line.endswith("; randaugment")
    spec = dataclasses.replace(tiny_spec(), resolution=16)
    first = [b[0].numpy() for b in data.train_dataset(images, labels, recipe, spec, epoch=1)]
    again = [b[0].numpy() for b in data.train_dataset(images, labels, recipe, spec, epoch=1)]
    other = [b[0].numpy() for b in data.train_dataset(images, labels, recipe, spec, epoch=0)]
    assert len(first) == 2 and first[0].shape == (32, 16, 16, 3)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])
    pixels = first[0] * np.asarray(spec.std, np.float32) + np.asarray(spec.mean, np.float32)
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-3)  # whole uint8 values after augmenting
