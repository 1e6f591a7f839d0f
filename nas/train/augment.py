"""RandAugment and AutoAugment policy v0 of tensorflow/tpu `models/official/efficientnet/autoaugment.py`.

Every op takes and returns a uint8 [H, W, 3] image and follows the reference's arithmetic, quirks
included, because a recipe "as the reference" must augment as the reference did:

- `blend` casts float -> uint8 by truncation (not rounding), clipping only outside 0 < factor < 1.
- Contrast's grey "mean" is `sum(histogram) / 256`, i.e. the PIXEL COUNT / 256, not the mean grey level.
- Equalize divides the cumulative histogram by `(count - last) // 255` (PIL: // 256).
- Solarize at level 10 has threshold 256, which the reference's TF1 graph converted to uint8 0, so
  every pixel is inverted (`image < 0` is never true); the threshold wraps mod 256 here likewise.
- Posterize's `int(level / 10 * 4)` bits can be 0 (policy v0's level 2): TF's right shift clamps the
  shift of 8 to 7, so the top bit survives (PIL would give black).
- Geometric ops (Rotate, ShearX/Y, TranslateX/Y) use nearest-neighbour projective transforms, and the
  area that comes from outside the image is grey 128; Cutout pastes a grey (128) square of half-size
  40 px; translations reach 100 px. Those sizes are the reference's, in pixels, at any resolution.
- RandAugment applies each of its `num_layers` chosen ops always (the reference draws a probability
  per op and ignores it); AutoAugment applies each op of the chosen sub-policy with its probability.

Randomness is stateless: every draw comes from `tf.random.experimental.stateless_*` with a seed
split from the caller's (seed, epoch, position) seed, so a resumed run augments exactly as before.
"""

from __future__ import annotations

import math

import tensorflow as tf

MAX_LEVEL = 10.0
REPLACE = 128  # the reference's replace_value [128] * 3
CUTOUT_CONST, TRANSLATE_CONST = 40, 100  # augmentation_hparams of the reference, in pixels

RANDAUGMENT_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color",
                   "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
                   "Cutout", "SolarizeAdd")

# policy_v0(): 25 sub-policies of (op, probability, level).
POLICY_V0 = (
    (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)), (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
    (("Color", 0.4, 1), ("Rotate", 0.6, 8)), (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
    (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)), (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
    (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)), (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
    (("Color", 0.6, 1), ("Equalize", 1.0, 2)), (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
    (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)), (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
    (("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)), (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
    (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)), (("Rotate", 1.0, 7), ("TranslateY", 0.8, 9)),
    (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)), (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
    (("Color", 1.0, 0), ("Rotate", 0.6, 2)), (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
    (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)), (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
    (("Posterize", 0.8, 2), ("Solarize", 0.6, 10)), (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
    (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
)


# -- the ops ---------------------------------------------------------------------------------------

def blend(image1, image2, factor: float):
    """image1 + factor * (image2 - image1), truncated to uint8 (clipped only when extrapolating)."""
    if factor == 0.0:
        return tf.convert_to_tensor(image1)
    if factor == 1.0:
        return tf.convert_to_tensor(image2)
    image1, image2 = tf.cast(image1, tf.float32), tf.cast(image2, tf.float32)
    temp = image1 + factor * (image2 - image1)
    if 0.0 < factor < 1.0:
        return tf.cast(temp, tf.uint8)
    return tf.cast(tf.clip_by_value(temp, 0.0, 255.0), tf.uint8)


def invert(image):
    return 255 - image


def solarize(image, threshold: int = 128):
    # The TF1 graph converted the Python threshold to uint8, so 256 became 0 (see the module docstring).
    return tf.where(image < tf.constant(threshold % 256, tf.uint8), image, 255 - image)


def solarize_add(image, addition: int = 0, threshold: int = 128):
    added = tf.cast(tf.clip_by_value(tf.cast(image, tf.int64) + addition, 0, 255), tf.uint8)
    return tf.where(image < threshold, added, image)


def posterize(image, bits: int):
    shift = min(8 - bits, 7)  # TF clamps a shift >= the bit width to width - 1
    return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def color(image, factor: float):
    return blend(tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image)), image, factor)


def contrast(image, factor: float):
    grey = tf.cast(tf.image.rgb_to_grayscale(image), tf.int32)
    hist = tf.histogram_fixed_width(grey, [0, 255], nbins=256)
    mean = tf.reduce_sum(tf.cast(hist, tf.float32)) / 256.0  # the reference's: pixel count / 256
    degenerate = tf.cast(tf.clip_by_value(tf.ones_like(grey, tf.float32) * mean, 0.0, 255.0), tf.uint8)
    return blend(tf.image.grayscale_to_rgb(degenerate), image, factor)


def brightness(image, factor: float):
    return blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor: float):
    """Blend with a 3x3 smoothing (centre 5, others 1, / 13) of the inside; the border stays as it is."""
    kernel = tf.tile(tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32, shape=[3, 3, 1, 1]) / 13.0,
                     [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(tf.cast(image, tf.float32)[None], kernel, [1, 1, 1, 1], padding="VALID")
    smooth = tf.cast(tf.clip_by_value(smooth, 0.0, 255.0), tf.uint8)[0]
    inside = tf.pad(tf.ones_like(smooth), [[1, 1], [1, 1], [0, 0]])
    degenerate = tf.where(tf.equal(inside, 1), tf.pad(smooth, [[1, 1], [1, 1], [0, 0]]), image)
    return blend(degenerate, image, factor)


def autocontrast(image):
    """Each channel stretched linearly from its [min, max] to [0, 255] (unchanged when flat)."""
    def channel(c):
        lo, hi = tf.cast(tf.reduce_min(c), tf.float32), tf.cast(tf.reduce_max(c), tf.float32)

        def stretch():
            scale = 255.0 / (hi - lo)
            return tf.cast(tf.clip_by_value(tf.cast(c, tf.float32) * scale - lo * scale, 0.0, 255.0), tf.uint8)

        return tf.cond(hi > lo, stretch, lambda: c)

    return tf.stack([channel(image[:, :, i]) for i in range(3)], 2)


def equalize(image):
    def channel(c):
        c = tf.cast(c, tf.int32)
        hist = tf.histogram_fixed_width(c, [0, 255], nbins=256)
        nonzero = tf.reshape(tf.gather(hist, tf.where(tf.not_equal(hist, 0))), [-1])
        step = (tf.reduce_sum(nonzero) - nonzero[-1]) // 255

        def mapped():
            lut = (tf.cumsum(hist) + step // 2) // step
            lut = tf.clip_by_value(tf.concat([[0], lut[:-1]], 0), 0, 255)
            return tf.gather(lut, c)

        return tf.cast(tf.cond(tf.equal(step, 0), lambda: c, mapped), tf.uint8)

    return tf.stack([channel(image[:, :, i]) for i in range(3)], 2)


def _transform(image, transform):
    """Output (x, y) samples input ((a0 x + a1 y + a2), (b0 x + b1 y + b2)), nearest; outside -> grey.

    As the reference's wrap/unwrap: an all-ones fourth channel is transformed along, and where it
    comes out 0 the pixel came from outside the image."""
    shape = tf.shape(image)
    wrapped = tf.concat([image, tf.ones([shape[0], shape[1], 1], image.dtype)], 2)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=wrapped[None], transforms=tf.reshape(tf.cast(tf.stack(transform), tf.float32), [1, 8]),
        output_shape=shape[:2], fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")[0]
    return tf.where(tf.equal(out[:, :, 3:], 0), tf.constant(REPLACE, image.dtype), out[:, :, :3])


def rotate(image, degrees):
    """Counter-clockwise about the centre (tf.contrib.image.rotate's transform)."""
    radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    h, w = (tf.cast(tf.shape(image)[i], tf.float32) for i in (0, 1))
    cos, sin = tf.cos(radians), tf.sin(radians)
    x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
    y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
    return _transform(image, [cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])


def translate_x(image, pixels):
    return _transform(image, [1.0, 0.0, pixels, 0.0, 1.0, 0.0, 0.0, 0.0])


def translate_y(image, pixels):
    return _transform(image, [1.0, 0.0, 0.0, 0.0, 1.0, pixels, 0.0, 0.0])


def shear_x(image, level):
    return _transform(image, [1.0, level, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])


def shear_y(image, level):
    return _transform(image, [1.0, 0.0, 0.0, level, 1.0, 0.0, 0.0, 0.0])


def cutout(image, pad_size: int, center):
    """A grey square of side up to 2 * pad_size centred on `center` (row, column), cut by the edges."""
    shape = tf.shape(image)
    rows, cols = tf.range(shape[0])[:, None], tf.range(shape[1])[None, :]
    inside = ((rows >= center[0] - pad_size) & (rows < center[0] + pad_size)
              & (cols >= center[1] - pad_size) & (cols < center[1] + pad_size))
    return tf.where(inside[:, :, None], tf.constant(REPLACE, image.dtype), image)


# -- levels and the two policies -------------------------------------------------------------------

def _signed(value: float, seed):
    """The reference's _randomly_negate_tensor: either sign with probability 1/2."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.where(flip, -value, value)


def apply_op(name: str, image, level: float, seed):
    """Reference op `name` at `level` (0..10); `seed` draws the sign of signed ops and Cutout's centre."""
    enhance = level / MAX_LEVEL * 1.8 + 0.1
    if name == "AutoContrast":
        return autocontrast(image)
    if name == "Equalize":
        return equalize(image)
    if name == "Invert":
        return invert(image)
    if name == "Rotate":
        return rotate(image, _signed(level / MAX_LEVEL * 30.0, seed))
    if name == "Posterize":
        return posterize(image, int(level / MAX_LEVEL * 4))
    if name == "Solarize":
        return solarize(image, int(level / MAX_LEVEL * 256))
    if name == "SolarizeAdd":
        return solarize_add(image, int(level / MAX_LEVEL * 110))
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return {"Color": color, "Contrast": contrast, "Brightness": brightness, "Sharpness": sharpness}[name](
            image, enhance)
    if name in ("ShearX", "ShearY"):
        return (shear_x if name == "ShearX" else shear_y)(image, _signed(level / MAX_LEVEL * 0.3, seed))
    if name in ("TranslateX", "TranslateY"):
        # translate([-pixels, 0]) in the reference: output x samples input x + pixels.
        pixels = _signed(level / MAX_LEVEL * TRANSLATE_CONST, seed)
        return (translate_x if name == "TranslateX" else translate_y)(image, pixels)
    if name == "Cutout":
        shape = tf.shape(image)
        center = tf.random.stateless_uniform([2], seed, minval=0, maxval=2 ** 31 - 1, dtype=tf.int32) % shape[:2]
        return cutout(image, int(level / MAX_LEVEL * CUTOUT_CONST), center)
    raise ValueError(f"unknown augmentation op {name!r}")


def _fixed(image, result):
    """Keep the static shape through tf.switch_case / tf.cond (the batcher needs it)."""
    return tf.ensure_shape(result, image.shape)


def randaugment(image, seed, num_layers: int = 2, magnitude: float = 10.0):
    """`num_layers` ops, each drawn uniformly from the 16 and applied at `magnitude`."""
    for layer_seed in tf.unstack(tf.random.experimental.stateless_split(seed, num_layers)):
        choose, op_seed = tf.unstack(tf.random.experimental.stateless_split(layer_seed, 2))
        which = tf.random.stateless_uniform([], choose, maxval=len(RANDAUGMENT_OPS), dtype=tf.int32)
        image = tf.switch_case(which, [
            (lambda name=name, image=image: _fixed(image, apply_op(name, image, float(magnitude), op_seed)))
            for name in RANDAUGMENT_OPS])
    return image


def autoaugment_v0(image, seed):
    """One of policy v0's 25 sub-policies, uniformly; each of its two ops with its probability."""
    choose, seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    which = tf.random.stateless_uniform([], choose, maxval=len(POLICY_V0), dtype=tf.int32)

    def sub_policy(ops):
        def run(image=image):
            out = image
            for (name, prob, level), op_seed in zip(ops, tf.unstack(tf.random.experimental.stateless_split(seed, 4))):
                coin, arg_seed = tf.unstack(tf.random.experimental.stateless_split(op_seed, 2))
                # The reference's floor(uniform + prob): applied with probability prob.
                apply = tf.floor(tf.random.stateless_uniform([], coin) + prob) > 0
                out = tf.cond(apply, lambda out=out, n=name, lv=level, s=arg_seed: _fixed(out, apply_op(n, out, float(lv), s)),
                              lambda out=out: out)
            return _fixed(image, out)
        return run

    return tf.switch_case(which, [sub_policy(ops) for ops in POLICY_V0])
