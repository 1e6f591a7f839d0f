import dataclasses

import pytest

from search_space import REGISTRY, BlockSpec, ModelSpec, SpecError, decode_block, round_filters, round_repeats


def test_round_filters_reference_rule():
    assert round_filters(32, 1.0) == 32
    assert round_filters(24, 1.2) == 32  # 28.8 -> 32
    assert round_filters(32, 1.2) == 40
    assert round_filters(1280, 1.2) == 1536
    assert round_filters(16, 1.1) == 16  # 17.6 -> 16, not below 0.9 * 17.6
    assert round_filters(3, 1.0) == 8  # never below the divisor
    assert round_filters(40, 1.1) == 48  # 44 -> int(48) // 8 * 8
    assert round_filters(20, 1.1) == 24  # 22 -> 24 (round half up at 4)
    assert round_repeats(3, 1.1) == 4 and round_repeats(4, 1.4) == 6 and round_repeats(1, 1.0) == 1


def test_first_block_quirk_declared_input_sets_expansion_width():
    s = REGISTRY["efficientnet-edgetpu-S"].layers()
    assert s[0].kind == "stem" and s[0].out_ch == 32
    assert (s[1].in_ch, s[1].expanded_ch, s[1].out_ch) == (32, 96, 24)  # i24 * e4, fed 32 channels
    ell = REGISTRY["efficientnet-edgetpu-L"].layers()
    assert ell[0].out_ch == 40
    assert (ell[1].in_ch, ell[1].expanded_ch, ell[1].out_ch) == (40, 128, 32)


def test_repeats_use_stride_one_and_output_width():
    layers = REGISTRY["efficientnet-edgetpu-S"].layers()
    stage1 = [l for l in layers if l.stage == 1]
    assert [l.stride for l in stage1] == [2, 1]
    assert (stage1[1].in_ch, stage1[1].expanded_ch) == (32, 32 * 8)
    assert [l.in_size for l in stage1] == [112, 56]


def test_layer_counts_match_reference_checkpoint_block_numbering():
    # checkpoints number blocks_0..blocks_17 for S, 24 blocks for M, 27 for L
    assert [len(REGISTRY[f"efficientnet-edgetpu-{m}"].layers()) - 2 for m in "SML"] == [18, 24, 27]


def test_repeated_first_block_stays_noskip_in_m_and_l():
    for name in ("efficientnet-edgetpu-M", "efficientnet-edgetpu-L"):
        stage0 = [l for l in REGISTRY[name].layers() if l.stage == 0]
        assert len(stage0) == 2 and not any(l.residual for l in stage0)


def test_residual_rules():
    layers = REGISTRY["efficientnet-edgetpu-S"].layers()
    stage2 = [l for l in layers if l.stage == 2]
    assert [l.residual for l in stage2] == [False, True, True, True]
    # MBConv compares real tensor channels: an e1 block whose declared input differs from the real
    # input still gets its residual when real channels match.
    spec = ModelSpec(blocks=(decode_block("r1_k3_s11_e1_i16_o32"),), stem_filters=32)
    assert spec.layers()[1].residual
    # fused blocks compare declared filters: declared 16 -> 32 means no residual even though 32 -> 32
    fused = ModelSpec(blocks=(decode_block("r1_k3_s11_e4_i16_o32_c1"),), stem_filters=32)
    assert not fused.layers()[1].residual
    assert ModelSpec(blocks=(decode_block("r1_k3_s11_e4_i32_o32_c1"),)).layers()[1].residual


def test_drop_connect_survival_rises_linearly_with_block_index():
    layers = REGISTRY["efficientnet-edgetpu-S"].layers()[1:-1]
    assert [round(l.survival_prob, 6) for l in layers] == [round(1 - 0.2 * i / 18, 6) for i in range(18)]


def test_head_is_width_scaled_except_for_mnasnet():
    assert REGISTRY["efficientnet-edgetpu-L"].layers()[-1].expanded_ch == 1536
    assert REGISTRY["efficientnet-b4"].layers()[-1].expanded_ch == round_filters(1280, 1.4)
    wide = dataclasses.replace(REGISTRY["mnasnet-a1"], width=1.4)
    assert wide.layers()[-1].expanded_ch == 1280


def test_se_squeeze_width_uses_declared_input_filters():
    b0 = REGISTRY["efficientnet-b0"].layers()
    assert b0[1].se_ch == 8 and b0[2].se_ch == 4  # 32*0.25, then 16*0.25


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_yaml_round_trip_gives_an_equal_spec(name):
    spec = REGISTRY[name]
    assert ModelSpec.from_yaml(spec.to_yaml()) == spec


def test_yaml_accepts_block_mappings():
    spec = ModelSpec.from_dict({"blocks": [{"kind": "fused_mbconv", "expand_ratio": 4, "in_filters": 24,
                                            "out_filters": 24, "skip": False}]})
    assert spec.block_strings == ["r1_k3_s11_e4_i24_o24_c1_noskip"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"blocks": ["r1_k3_s11_e1_i32_o16"], "widht": 1.0}, "unknown field(s) widht"),
        ({"blocks": ["r1_k3_s11_e1_i32_o16"], "width": "wide"}, "width: expected float"),
        ({"blocks": ["r1_k3_s11_e1_i32_o16"], "resolution": 22.5}, "resolution: expected int"),
        ({"blocks": ["r1_k3_s11_e1_i32_o16"], "resolution": True}, "resolution: expected int"),
        ({"blocks": ["r1_k3_s11_e1_i32_o16", "r1_k3_s13_e1_i16_o16"]}, "blocks[1]: "),
        ({"blocks": []}, "non-empty list"),
        ({"width": 1.0}, "missing field 'blocks'"),
        ({"blocks": ["r1_k3_s11_e1_i32_o16"], "activation": "gelu"}, "activation 'gelu'"),
        ({"blocks": ["r1_k3_s11_e1_i32_o16"], "width": -1.0}, "width must be a number in (0, 100]"),
        ({"blocks": ["r1_k3_s11_e1_i32_o16"], "mean": [1, 2]}, "mean and std"),
        ({"blocks": [{"kind": "mbconv", "kernal": 3}]}, "blocks[0]"),
        (["not", "a", "mapping"], "expected a mapping"),
    ],
)
def test_bad_spec_data_is_rejected_with_the_field_named(data, message):
    with pytest.raises(SpecError) as info:
        ModelSpec.from_dict(data, source="my.yaml")
    assert message in str(info.value) and str(info.value).startswith("my.yaml")
    assert "\n" not in str(info.value)


def test_invalid_yaml_reports_the_line():
    with pytest.raises(SpecError, match=r"^x.yaml: not valid YAML at line \d+$"):
        ModelSpec.from_yaml("blocks:\n  - [unclosed\n", source="x.yaml")


def test_blockspec_validates_its_fields():
    with pytest.raises(SpecError):
        BlockSpec(kind="conv")
    with pytest.raises(SpecError):
        BlockSpec(stride=3)
    with pytest.raises(SpecError):
        BlockSpec(kernel=4)
