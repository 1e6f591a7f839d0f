"""Architectures as data: `ModelSpec`, the block-string codec, counting and the released specs.

Importing this package never imports TensorFlow; the Keras builder lives in `search_space.builder`.
"""

from search_space.codec import decode_block, encode_block
from search_space.counting import Cost, count_macs, count_params, layer_cost, model_cost
from search_space.errors import UserError
from search_space.registry import REGISTRY, get_spec, model_names
from search_space.space import SearchSpace
from search_space.spec import BlockSpec, Layer, ModelSpec, SpecError, round_filters, round_repeats

__all__ = [
    "BlockSpec", "Cost", "Layer", "ModelSpec", "REGISTRY", "SearchSpace", "SpecError", "UserError", "build_model",
    "count_macs", "count_params", "decode_block", "encode_block", "get_spec", "layer_cost",
    "model_cost", "model_names", "round_filters", "round_repeats",
]


def __getattr__(name: str):
    # the Keras builder imports TensorFlow: loaded on first use so `import search_space` stays cheap
    if name == "build_model":
        from search_space.builder import build_model

        return build_model
    raise AttributeError(f"module 'search_space' has no attribute {name!r}")
