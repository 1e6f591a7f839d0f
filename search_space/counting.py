"""Trainable parameters and multiply-accumulates, summed over the ops of `ModelSpec.layers()`.

Counts follow what the Keras builder creates from the same ops (`search_space.ops`): convolutions
without bias, batch norm contributing gamma and beta (its moving statistics are not trainable),
squeeze-excite convs with bias, and the dense classifier with bias. MACs count convolutions (full,
depthwise, 1x1, squeeze-excite) and the dense layer; batch norm, activations, pooling and additions
are not multiply-accumulates.
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


def layer_cost(layer: Layer) -> Cost:
    """Parameters and MACs of one concrete layer."""
    ops = layer.ops
    return Cost(sum(op.params for op in ops), sum(op.macs for op in ops))


def model_cost(spec: ModelSpec) -> Cost:
    total = Cost(0, 0)
    for layer in spec.layers():
        total += layer_cost(layer)
    return total


def count_params(spec: ModelSpec) -> int:
    return model_cost(spec).params


def count_macs(spec: ModelSpec) -> int:
    return model_cost(spec).macs
