"""Trainable parameters and multiply-accumulates, computed from `ModelSpec.layers()` alone.

Counts follow what the Keras builder creates: convolutions without bias, batch norm contributing
gamma and beta (its moving statistics are not trainable), squeeze-excite convs with bias, and the
dense classifier with bias. MACs count convolutions (full, depthwise, 1x1, squeeze-excite) and the
dense layer; batch norm, activations, pooling and additions are not multiply-accumulates.
"""

from __future__ import annotations

from dataclasses import dataclass

from search_space.spec import Layer, ModelSpec


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.macs + other.macs)


def _conv(size: int, k: int, cin: int, cout: int, depthwise: bool = False) -> Cost:
    weights = k * k * cin * (1 if depthwise else cout)
    return Cost(weights + 2 * cout, weights * size * size)  # + batch-norm gamma, beta


def layer_cost(layer: Layer) -> Cost:
    """Parameters and MACs of one concrete layer."""
    size_in, size_out = layer.in_size, layer.out_size
    if layer.kind == "stem":
        return _conv(size_out, layer.kernel, layer.in_ch, layer.out_ch)
    if layer.kind == "head":
        conv = _conv(size_in, 1, layer.in_ch, layer.expanded_ch)
        dense = Cost(layer.expanded_ch * layer.out_ch + layer.out_ch, layer.expanded_ch * layer.out_ch)
        return conv + dense
    cost = Cost(0, 0)
    expands = layer.expand_ratio != 1
    if layer.kind == "mbconv":
        if expands:
            cost += _conv(size_in, 1, layer.in_ch, layer.expanded_ch)
        cost += _conv(size_out, layer.kernel, layer.expanded_ch, layer.expanded_ch, depthwise=True)
    elif expands:  # fused: the full kxk conv does the expansion (and the stride, unless moved)
        spatial = size_in if layer.fused_stride_on == "project" else size_out
        cost += _conv(spatial, layer.kernel, layer.in_ch, layer.expanded_ch)
    if layer.se_ch:
        e, s = layer.expanded_ch, layer.se_ch
        cost += Cost(e * s + s + s * e + e, 2 * e * s)
    return cost + _conv(size_out, 1, layer.expanded_ch, layer.out_ch)


def model_cost(spec: ModelSpec) -> Cost:
    total = Cost(0, 0)
    for layer in spec.layers():
        total += layer_cost(layer)
    return total


def count_params(spec: ModelSpec) -> int:
    return model_cost(spec).params


def count_macs(spec: ModelSpec) -> int:
    return model_cost(spec).macs
