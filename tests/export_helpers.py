"""Shared by the export / eval / checkpoint tests: a tiny EdgeTPU-like spec, a TF1 checkpoint writer
(the reference's own saver, in graph mode) and a PNG writer; CLI helpers are in cli_helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search_space import ModelSpec, decode_block

TINY_BLOCKS = ("r1_k3_s22_e4_i8_o16_c1", "r2_k3_s22_e4_i16_o24")


def tiny_spec(**overrides) -> ModelSpec:
    """EdgeTPU's shape in miniature: a fused stride-2 block, an MBConv stage, 10 classes + background."""
    settings = dict(
        name="tiny-edgetpu", blocks=tuple(decode_block(b) for b in TINY_BLOCKS), stem_filters=8,
        head_filters=32, resolution=32, dropout=0.0, num_classes=11, include_background=True,
        mean=(127.0,) * 3, std=(128.0,) * 3,
    )
    settings.update(overrides)
    return ModelSpec(**settings)


def write_tf1_checkpoint(directory, values: dict[str, np.ndarray], extras: dict[str, np.ndarray] | None = None) -> Path:
    """`model.ckpt*` written by tf.compat.v1.train.Saver with exactly these variable names."""
    import tensorflow as tf

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    items = {**values, **(extras or {})}
    with tf.Graph().as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=tf.constant(value)) for name, value in items.items()]
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(directory / "model.ckpt"))
    return directory


def released_layout(model, ema: bool = True, slots: bool = True, seed: int = 0) -> tuple[dict, dict]:
    """(variables, extras) of a released checkpoint holding `model`'s weights as the moving averages.

    The plain variables get other values, so a test can tell which copy was loaded.
    """
    import keras

    from search_space.builder import reference_weight_map

    rng = np.random.default_rng(seed)
    weights = {n: keras.ops.convert_to_numpy(v) for n, v in reference_weight_map(model).items()}
    values, extras = {}, {"global_step": np.int64(1234)}
    for name, value in weights.items():
        if ema:
            values[name] = (value + rng.normal(0, 0.5, value.shape)).astype(np.float32)
            values[f"{name}/ExponentialMovingAverage"] = value
        else:
            values[name] = value
        if slots:
            extras[f"{name}/RMSProp"] = np.ones_like(value)
            extras[f"{name}/RMSProp_1"] = np.zeros_like(value)
    return values, extras


def save_png(path, pixels: np.ndarray) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return path
