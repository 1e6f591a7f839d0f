"""`search_space.layer_names`: every builder layer of S/M/L parses to what it is, the released checkpoints'
variable lists round-trip, and freezing, the L2 term and checkpoint mapping agree with the layers' Keras
classes. A scope or kind renamed in the builder (or here) fails these tests, not a user's run."""

import keras
import pytest

from search_space import REGISTRY
from search_space import layer_names as ln
from tests.test_builder import CHECKPOINT_VARS

SIZES = [f"efficientnet-edgetpu-{s}" for s in "SML"]
KERAS_KINDS = {keras.layers.Conv2D: ln.CONV, keras.layers.DepthwiseConv2D: ln.DEPTHWISE,
               keras.layers.BatchNormalization: ln.BATCH_NORM, keras.layers.Dense: ln.DENSE}


@pytest.fixture(scope="module", params=SIZES)
def built(request):
    from search_space.builder import build_model

    spec = REGISTRY[request.param]
    return spec, build_model(spec)


def _released(name):
    lines = (CHECKPOINT_VARS / f"{name}.txt").read_text().splitlines()[1:]
    return [line.split(" ", 1)[0] for line in lines if line.startswith(name + "/")]


def test_every_layer_parses_to_its_block_role_and_kind(built):
    spec, model = built
    blocks = sum(1 for layer in spec.layers() if layer.kind not in (ln.STEM, ln.HEAD))
    seen_blocks = set()
    for layer in model.layers[1:]:  # [0] is the input
        name = ln.parse(layer.name)
        assert name.keras == layer.name  # writing and parsing are one mapping
        assert name.role in ln.ROLES
        if name.block is not None:
            seen_blocks.add(name.block)
        # The kind the name claims is the layer's class: what freezing, L2 and checkpoints rely on.
        kind = KERAS_KINDS.get(type(layer))
        if kind is not None or layer.weights:
            assert name.kind == kind and not name.activation, layer.name
        assert name.is_batch_norm == isinstance(layer, keras.layers.BatchNormalization), layer.name
    assert seen_blocks == set(range(blocks))  # blocks_0 .. blocks_<n-1>, one per block of the spec


@pytest.mark.parametrize("name", SIZES)
def test_released_variable_lists_round_trip(name):
    for variable in _released(name):
        if variable.endswith("/ExponentialMovingAverage"):
            variable = variable.rsplit("/", 1)[0]
        model, layer, weight = ln.parse_variable(variable)
        assert model == name and f"{model}/{layer.reference_scope}/{weight}" == variable
        assert layer.kind in ln.WEIGHT_KINDS, variable
        norm_weight = weight in ("gamma", "beta", "moving_mean", "moving_variance")
        assert layer.is_batch_norm == norm_weight, variable
        assert (layer.block is None) == (layer.role != ln.BLOCKS)


def test_not_a_builder_name_is_refused():
    for bad in ("images", "stem", "block_3.conv2d", "blocks.conv2d", "head_2.dense", "conv2d"):
        with pytest.raises(ValueError):
            ln.parse(bad)


def test_freezing_and_weight_decay_read_the_map():
    """`--freeze-until 2` freezes exactly the weighted layers of the stem and blocks 0-1; the L2 term takes
    every trainable variable but batch norm's (by the layers' Keras classes)."""
    import tensorflow as tf

    from nas.train.trainer import Trainer
    from nas.train.recipe import TrainConfig, resolve
    from nas.train.session import _freeze
    from search_space.builder import build_model, reference_weight_map

    spec = REGISTRY[SIZES[0]]
    model = build_model(spec)
    frozen = _freeze(model, 2)
    stem_and_two = [layer for layer in model.layers if layer.weights and
                    (layer.name.startswith("stem.") or layer.name.startswith(("blocks_0.", "blocks_1.")))]
    assert frozen == len(stem_and_two) and all(not layer.trainable for layer in stem_and_two)
    assert all(layer.trainable for layer in model.layers if layer.weights and layer not in stem_and_two)

    recipe, _ = resolve(TrainConfig(preset="reference", batch_size=8, epochs=1), 64)
    trainer = Trainer(model, spec, recipe, tf.distribute.get_strategy(), reference_weight_map(model))
    norms = {id(w) for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights}
    expected = [v for v in model.trainable_variables if id(v) not in norms]
    assert expected and [id(v) for v in trainer.decayed] == [id(v) for v in expected]
