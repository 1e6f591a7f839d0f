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
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nas.train import augment


def epoch_order(n: int, seed: int, epoch: int, steps: int, batch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)[:steps * batch]


def _crop(image, seed, min_area: float):
    shape = tf.shape(image)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed, min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(min_area, 1.0), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    return tf.slice(image, begin, size)


def preprocess_train(image, seed, resolution: int, config):
    """uint8 [H, W, 3] -> uint8-valued float32 [R, R, 3]; `seed` is a stateless [2] int64 seed."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
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


def train_dataset(images: np.ndarray, labels: np.ndarray, recipe, spec, epoch: int) -> tf.data.Dataset:
    """Epoch `epoch`'s batches of normalised images (full batches only)."""
    c = recipe.config
    order = epoch_order(len(labels), c.seed, epoch, recipe.steps_per_epoch, recipe.batch_size)
    mean, std = (tf.constant(np.asarray(v, np.float32)) for v in (spec.mean, spec.std))
    positions = np.arange(len(order), dtype=np.int64)

    def one(image, label, position):
        seed = tf.stack([tf.constant(c.seed * 100_003 + epoch, tf.int64), position])
        image = preprocess_train(image, seed, spec.resolution, c)
        return (image - mean) / std, label

    ds = tf.data.Dataset.from_tensor_slices((images[order], labels[order], positions))
    ds = ds.map(one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(recipe.batch_size, drop_remainder=True).prefetch(2)


def eval_batches(images: np.ndarray, spec, batch: int = 256):
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    for i in range(0, len(images), batch):
        yield tf.constant((images[i:i + batch].astype(np.float32) - mean) / std)
