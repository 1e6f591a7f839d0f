"""Which searched decisions the proxy can see: the feature-map sizes of the candidate it trains.

A k x k convolution with 'same' padding on an n x n map reaches every pixel from every position
once (k - 1) / 2 >= n - 1. Two kernel options are then the same function class (the taps that
fall on padding multiply zeros), so a proxy that runs a stage only on such maps cannot tell its
kernel choices apart: a search there ranks them by seed noise. With the skeleton's total stride 32,
a 16 px proxy puts the late stages on 2x2 and 1x1 maps. `proxy.strides` fixes that (see task.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.proxy.task import ProxyConfig, shrink
from search_space.spec import ModelSpec


@dataclass(frozen=True)
class StageMaps:
    stage: int
    sizes: tuple[int, ...]  # the input side of every layer of the stage (stride-2 layers: before the stride)

    def kernel_visible(self, kernels: tuple[int, ...]) -> bool:
        """Whether some layer's map is big enough that the smallest kernel does not reach all of it:
        only then does a larger kernel see pixels the smaller one cannot."""
        return len(set(kernels)) > 1 and max(self.sizes) - 1 > (min(kernels) - 1) // 2


def stage_maps(spec: ModelSpec, proxy: ProxyConfig, num_classes: int = 10) -> list[StageMaps]:
    """The input sides of each stage's layers in the candidate the proxy trains."""
    small = shrink(spec, proxy, num_classes, include_background=False)
    sizes: dict[int, list[int]] = {}
    for layer in small.layers():
        if layer.stage >= 0:
            sizes.setdefault(layer.stage, []).append(layer.in_size)
    return [StageMaps(stage, tuple(v)) for stage, v in sorted(sizes.items())]


def blind_kernel_stages(spec: ModelSpec, proxy: ProxyConfig, kernels: tuple[int, ...]) -> list[int]:
    """Stages whose kernel choice (among `kernels`) the proxy cannot see."""
    return [m.stage for m in stage_maps(spec, proxy) if not m.kernel_visible(kernels)]
