"""The training input pipeline: data order and augmentation are pure functions of (seed, epoch).

A resumed run therefore sees exactly the batches an uninterrupted one would, with no iterator state
to save: epoch `e` is the permutation `default_rng([seed, e])` of the training images, and every
image's random crop, flip and augmentation use stateless ops seeded by (seed, e, position).

Training preprocessing is the reference's `preprocess_for_train`: a distorted bounding-box crop
(min object covered 0.1, aspect 3/4..4/3, area `crop_min_area`..1, 10 attempts), bilinear resize to
the model's resolution, random horizontal flip, then (on uint8) RandAugment or AutoAugment. Where
the reference falls back to its evaluation centre crop after 10 failed attempts, the whole image is
used here: the loaded images are already the centre square at the model's resolution, and the
held-out images are evaluated as loaded (as `nas eval --offline` and the proxy do).

Streamed ImageNet (`data.stream`, `stream_dataset`) is preprocessed exactly as the reference: the
distorted crop is taken from every record's original image (not from a centre square), chosen from
the JPEG's header and decoded alone (`decode_and_crop_jpeg`), with the reference's fallback, the
centre crop of side R / (R + 32) of the short side, when sampling fails. The epoch's record order
is `TrainStream.shuffled` (shards in a (seed, epoch) order, a shuffle buffer seeded by (seed,
epoch)), and position `i` of it gets the seeds the in-memory path gives position `i`, so a streamed
epoch is a pure function of (seed, epoch) as well. Memory: the shuffle buffer's serialized records,
a few decoded crops in the parallel map, and the batch being built plus two prefetched (float32,
batch x R x R x 3 each).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nas.deploy.preprocessing import CROP_PADDING  # the reference's evaluation crop (`crop_window` there)
from nas.train import augment


def epoch_order(n: int, seed: int, epoch: int, steps: int, batch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)[:steps * batch]


def _window(shape, seed, min_area: float, fallback: int | None = None):
    """(offset [2], size [2]) of the distorted crop in an image of `shape` [H, W, C]. With `fallback`
    (the resolution), a box of the whole image, which is what failed sampling returns and what the
    reference's `_decode_and_random_crop` treats as failed, becomes its centre crop instead."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed, min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(min_area, 1.0), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    begin, size, sides = begin[:2], size[:2], tf.cast(shape[:2], tf.int32)
    if fallback is None:
        return begin, size
    side = tf.cast(fallback / (fallback + CROP_PADDING) * tf.cast(tf.reduce_min(sides), tf.float32), tf.int32)
    failed = tf.reduce_all(tf.equal(size, sides))
    return tf.where(failed, (sides - side + 1) // 2, begin), tf.where(failed, tf.stack([side, side]), size)


def _slice(image, window):
    begin, size = window
    return tf.slice(image, tf.concat([begin, [0]], 0), tf.concat([size, [-1]], 0))


def _crop(image, seed, min_area: float):
    return _slice(image, _window(tf.shape(image), seed, min_area))


def _crop_encoded(encoded, seed, min_area: float, resolution: int):
    """The reference's `_decode_and_random_crop` on a file's bytes: a JPEG's window is chosen from
    its header and only the window is decoded (`decode_and_crop_jpeg`: less CPU than decoding the
    whole image, which bounds streamed training); other formats are decoded whole and sliced."""
    def jpeg():
        window = _window(tf.image.extract_jpeg_shape(encoded), seed, min_area, resolution)
        return tf.io.decode_and_crop_jpeg(encoded, tf.concat(window, 0), channels=3)

    def other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return _slice(image, _window(tf.shape(image), seed, min_area, resolution))

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def preprocess_train(image, seed, resolution: int, config, encoded: bool = False):
    """uint8 [H, W, 3] -> uint8-valued float32 [R, R, 3]; `seed` is a stateless [2] int64 seed.
    `encoded`: `image` is a file's bytes (streamed), cropped while decoding as the reference does."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    if encoded:
        crop = _crop_encoded(image, seeds[0], config.crop_min_area, resolution)
    else:
        crop = _crop(image, seeds[0], config.crop_min_area)
    image = tf.image.resize(crop, (resolution, resolution), method="bilinear")
    if config.flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if config.augment != "none":
        # The reference clips and casts (truncates) the resized floats to uint8 before augmenting.
        image = tf.cast(tf.clip_by_value(image, 0.0, 255.0), tf.uint8)
        if config.augment == "randaugment":
            image = augment.randaugment(image, seeds[2], config.randaugment_layers, config.randaugment_magnitude)
        else:
            image = augment.autoaugment_v0(image, seeds[2])
        image = tf.cast(image, tf.float32)
    return image


def _prepare(recipe, spec, epoch: int, encoded: bool = False):
    """(uint8 image or, `encoded`, its file's bytes; label; position in the epoch) -> (normalised
    training image, label)."""
    c = recipe.config
    mean, std = (tf.constant(np.asarray(v, np.float32)) for v in (spec.mean, spec.std))

    def one(image, label, position):
        seed = tf.stack([tf.constant(c.seed * 100_003 + epoch, tf.int64), position])
        image = preprocess_train(image, seed, spec.resolution, c, encoded)
        return (image - mean) / std, label

    return one


def _batched(ds, recipe) -> tf.data.Dataset:
    return ds.batch(recipe.batch_size, drop_remainder=True).prefetch(2)


def train_dataset(images: np.ndarray, labels: np.ndarray, recipe, spec, epoch: int) -> tf.data.Dataset:
    """Epoch `epoch`'s batches of normalised images (full batches only)."""
    c = recipe.config
    order = epoch_order(len(labels), c.seed, epoch, recipe.steps_per_epoch, recipe.batch_size)
    positions = np.arange(len(order), dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices((images[order], labels[order], positions))
    return _batched(ds.map(_prepare(recipe, spec, epoch), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True),
                    recipe)


def stream_dataset(stream, recipe, spec, epoch: int) -> tf.data.Dataset:
    """Epoch `epoch`'s batches from a `TrainStream`, each record cropped from its original image."""
    from nas.data.tfrecords import _checked_decode

    count = recipe.steps_per_epoch * recipe.batch_size
    records = stream.shuffled(recipe.config.seed, epoch).take(count)
    prepare = _prepare(recipe, spec, epoch, encoded=True)
    ds = tf.data.Dataset.zip((records, tf.data.Dataset.range(count)))
    ds = ds.map(lambda record, position: prepare(*_checked_decode(record, None), position),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Several workers: each keeps its share of the one global order (as the in-memory arrays are
    # split), rather than tf.data's default of giving each worker its own shards of files.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return _batched(ds, recipe).with_options(options)


def epoch_dataset(data, recipe, spec, epoch: int) -> tf.data.Dataset:
    """The training batches of epoch `epoch` of a loaded `Dataset`: streamed or in memory."""
    if data.stream is not None:
        return stream_dataset(data.stream, recipe, spec, epoch)
    return train_dataset(data.train_images, data.train_labels, recipe, spec, epoch)


def eval_batches(images: np.ndarray, spec, batch: int = 256):
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    for i in range(0, len(images), batch):
        yield tf.constant((images[i:i + batch].astype(np.float32) - mean) / std)
