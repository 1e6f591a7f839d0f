"""A direct count of a built Keras model's multiply-accumulates, independent of `search_space.counting`.

It reads each Conv2D / DepthwiseConv2D / Dense layer's kernel and output shape from the model itself:
output positions x kernel area x input channels per group x output channels (depthwise: x multiplier).
Batch norm, activations, pooling, rescaling and additions are not multiply-accumulates.
"""

from __future__ import annotations

import math

import keras


def layer_macs(layer) -> int:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, multiplier = layer.kernel.shape
        _, height, width, _ = layer.output.shape
        return height * width * kh * kw * channels * multiplier
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, channels_per_group, filters = layer.kernel.shape
        _, height, width, _ = layer.output.shape
        return height * width * kh * kw * channels_per_group * filters
    if isinstance(layer, keras.layers.Dense):
        inputs, units = layer.kernel.shape
        return math.prod(layer.output.shape[1:-1]) * inputs * units
    return 0


def keras_macs(model: keras.Model) -> int:
    return int(sum(layer_macs(layer) for layer in model.layers))
