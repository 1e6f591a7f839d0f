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
    """Trainable parameters and multiply-accumulates; costs add up (`model_cost` sums its layers')."""

    params: int
    macs: int

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.macs + other.macs)


def layer_cost(layer: Layer) -> Cost:
    """Parameters and MACs of one concrete layer."""
    ops = layer.ops
    return Cost(sum(op.params for op in ops), sum(op.macs for op in ops))


def model_cost(spec: ModelSpec) -> Cost:
    """Trainable parameters and MACs of a whole model (one image), summed over its layers."""
    total = Cost(0, 0)
    for layer in spec.layers():
        total += layer_cost(layer)
    return total


def count_params(spec: ModelSpec) -> int:
    """Trainable parameters of the model `spec` builds (batch norm's moving statistics excluded)."""
    return model_cost(spec).params


def count_macs(spec: ModelSpec) -> int:
    """Multiply-accumulates of one forward pass of one image at the spec's resolution."""
    return model_cost(spec).macs
