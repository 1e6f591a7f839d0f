"""Layer kinds and their ops: the one place a block kind is defined, and what registering one brings."""

import dataclasses

import pytest

from latency.edgetpu_model import EdgeTpuCostModel, layer_work
from search_space import REGISTRY, ModelSpec, UserError, count_params, decode_block, layer_cost
from search_space.codec import BlockSpec, BlockStringError
from search_space.ops import LAYER_KINDS, LayerKind, Op, block_kinds, conv
from search_space.spec import Layer


def test_block_kinds_come_from_the_registry_with_their_tokens():
    assert block_kinds() == ("mbconv", "fused_mbconv")
    assert [LAYER_KINDS.get(k).conv_type for k in block_kinds()] == [0, 1]
    assert LAYER_KINDS.names() == ("stem", "head", "mbconv", "fused_mbconv")


def test_mbconv_ops_with_se_and_residual():
    layer = Layer("mbconv", 28, 40, 240, 40, 5, 1, expand_ratio=6, se_ch=10, residual=True)
    assert layer.ops == (
        Op("conv1x1", 28, 28, 40, 240, norm=True, act=True),
        Op("depthwise", 28, 28, 240, 240, 5, 1, norm=True, act=True),
        Op("se", 28, 28, 240, 240, hidden=10),
        Op("conv1x1", 28, 28, 240, 40, norm=True, act=False),
        Op("add", 28, 28, 40, 40),
    )
    # by hand: expand 40*240 + bn, depthwise 25*240 + bn, se 2*240*10 + biases, project 240*40 + bn
    assert layer_cost(layer).params == (9600 + 480) + (6000 + 480) + (4800 + 250) + (9600 + 80)
    assert layer_cost(layer).macs == 9600 * 784 + 6000 * 784 + 4800 + 9600 * 784


@pytest.mark.parametrize("place, expand_stride, project_stride", [("expand", 2, 1), ("project", 1, 2)])
def test_fused_stride_placement(place, expand_stride, project_stride):
    layer = Layer("fused_mbconv", 56, 24, 192, 32, 3, 2, expand_ratio=8, fused_stride_on=place)
    expand, project = layer.ops
    assert (expand.kind, expand.kernel, expand.stride, project.stride) == ("conv", 3, expand_stride, project_stride)
    assert project.out_size == 28 and expand.out_size == (28 if place == "expand" else 56)
    assert layer.key[-1] == place


def test_fused_ratio_one_has_no_kxk_conv_and_strides_the_projection():
    layer = Layer("fused_mbconv", 56, 24, 24, 32, 5, 2, expand_ratio=1)
    assert layer.ops == (Op("conv1x1", 56, 28, 24, 32, 1, 2, norm=True, act=False),)
    assert layer.key[-1] == "expand"  # the placement does not matter here, but the table key says so


def test_cost_model_turns_se_into_five_tflite_ops():
    with_se = Layer("mbconv", 14, 80, 480, 80, 3, 1, expand_ratio=6, se_ch=20)
    without = dataclasses.replace(with_se, se_ch=0)
    extra_ops = layer_work(with_se).ops - layer_work(without).ops
    extra_bytes = layer_work(with_se).param_bytes - layer_work(without).param_bytes
    assert (extra_ops, extra_bytes) == (5, 2 * 480 * 20 + 4 * (480 + 20))


def test_unknown_kind_is_a_user_error_in_a_blockspec_and_in_yaml():
    with pytest.raises(UserError, match="block kind 'ghost' is not one of mbconv, fused_mbconv"):
        BlockSpec(kind="ghost")
    text = REGISTRY["efficientnet-edgetpu-S"].to_yaml().replace("- r1_k3_s11_e4_i24_o24_c1_noskip", "- kind: ghost")
    assert "kind: ghost" in text
    with pytest.raises(UserError, match=r"blocks\[0\]: block kind 'ghost' is not one of"):
        ModelSpec.from_yaml(text, "s.yaml")
    with pytest.raises(BlockStringError, match="token 'c2': conv type must be 0 or 1"):
        decode_block("r1_k3_s11_e4_i32_o24_c2")


@pytest.fixture
def plain_kind(monkeypatch):
    """A new block kind, registered as a user would: name, conv-type token, op list and nothing else."""

    def plain(layer):  # a plain kxk conv, then the linear 1x1 projection
        return (conv(layer.in_size, layer.kernel, layer.in_ch, layer.expanded_ch, layer.stride),
                conv(layer.out_size, 1, layer.expanded_ch, layer.out_ch, act=False))

    monkeypatch.setitem(LAYER_KINDS._entries, "plain", LayerKind("plain", plain, conv_type=2))
    return "plain"


def test_a_registered_block_kind_works_everywhere(plain_kind):
    block = decode_block("r2_k3_s22_e2_i16_o24_c2")
    assert block.kind == "plain" and str(block) == "r2_k3_s22_e2_i16_o24_c2"
    spec = ModelSpec("tiny", (block,), stem_filters=16, head_filters=32, resolution=32, num_classes=10)
    assert count_params(spec) == (432 + 32) + (3 * 3 * 16 * 32 + 64 + 32 * 24 + 48) + (
        3 * 3 * 24 * 48 + 96 + 48 * 24 + 48) + (24 * 32 + 64 + 32 * 10 + 10)
    assert EdgeTpuCostModel().predict_ms(spec) > 0

    from search_space.builder import build_model, trainable_params

    model = build_model(spec)
    assert trainable_params(model) == count_params(spec)
    assert [l.name for l in model.layers if l.name.startswith("blocks_0.")] == [
        "blocks_0.conv2d", "blocks_0.tpu_batch_normalization", "blocks_0.tpu_batch_normalization.act",
        "blocks_0.conv2d_1", "blocks_0.tpu_batch_normalization_1"]
