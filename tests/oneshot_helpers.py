"""A tiny space for the one-shot tests: three stages over a small skeleton, every decision free."""

from __future__ import annotations

from nas.proxy.task import ProxyConfig
from search_space.space import SearchSpace

TINY_SKELETON = {
    "name": "tiny", "stem_filters": 16, "head_filters": 64, "resolution": 32, "num_classes": 10,
    "blocks": ["r1_k3_s11_e4_i16_o16_c1_noskip", "r2_k3_s22_e4_i16_o24", "r2_k5_s11_e4_i24_o24"],
}
TINY_CHOICES = {"kind": ["mbconv", "fused_mbconv"], "kernel": [3, 5], "expand_ratio": [2, 4],
                "filter_multiplier": [0.75, 1.0, 1.25], "repeats_delta": [-1, 0, 1], "skip": [True, False],
                "se_ratio": [0.0]}
TINY_PROXY = ProxyConfig(resolution=8, width=0.5, batch_size=16)


def tiny_space() -> SearchSpace:
    return SearchSpace.from_dict({"skeleton": TINY_SKELETON, "choices": TINY_CHOICES})
