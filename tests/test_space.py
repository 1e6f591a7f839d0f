import random

import pytest

from search_space import REGISTRY
from search_space.space import DECISIONS, SearchSpace, SpaceError


def test_default_space_is_the_edgetpu_s_skeleton_with_mnas_choices():
    space = SearchSpace.from_dict({})
    assert space.skeleton == REGISTRY["efficientnet-edgetpu-S"]
    assert space.cardinalities == [2, 2, 2, 3, 3, 2, 1] * 6
    assert space.size == 144 ** 6


def test_edgetpu_s_is_a_point_of_the_space():
    space = SearchSpace.from_dict({})
    s = REGISTRY["efficientnet-edgetpu-S"]
    assert space.to_spec(space.from_spec(s)).blocks == s.blocks


def test_decisions_round_trip_through_specs():
    space = SearchSpace.from_dict({})
    rng = random.Random(0)
    for _ in range(200):
        spec = space.to_spec(space.sample(rng))
        assert space.to_spec(space.from_spec(spec)).blocks == spec.blocks
        # stage i's declared input is stage i-1's output: the chain is consistent
        for prev, block in zip(spec.blocks, spec.blocks[1:]):
            assert block.in_filters == prev.out_filters


def test_choices_change_the_right_fields():
    space = SearchSpace.from_dict({})
    n = len(DECISIONS)
    base = space.from_spec(REGISTRY["efficientnet-edgetpu-S"])
    changed = list(base)
    changed[3 * n + DECISIONS.index("kind")] = 1 - changed[3 * n + DECISIONS.index("kind")]
    changed[3 * n + DECISIONS.index("repeats_delta")] = 2  # +1
    changed[3 * n + DECISIONS.index("filter_multiplier")] = 2  # x1.25
    spec = space.to_spec(changed)
    assert spec.block_strings[3] == "r6_k5_s22_e8_i48_o120_c1"
    assert spec.blocks[4].in_filters == 120


def test_possible_layers_cover_every_sampled_candidate():
    space = SearchSpace.from_dict({})
    keys = {layer.key for layer in space.possible_layers()}
    rng = random.Random(1)
    for _ in range(300):
        assert {layer.key for layer in space.to_spec(space.sample(rng)).layers()} <= keys
    at_96 = {layer.key for layer in space.possible_layers(resolution=96)}
    assert all(k[1] <= 96 for k in at_96) and len(at_96) == len(keys)


def test_stage_overrides_and_yaml_round_trip():
    space = SearchSpace.from_dict({"choices": {"se_ratio": [0, 0.25]}, "stages": {0: {"kind": ["fused_mbconv"]}}})
    assert space.stages[0].kind == ("fused_mbconv",) and space.stages[1].kind == ("mbconv", "fused_mbconv")
    assert space.stages[2].se_ratio == (0.0, 0.25)
    assert SearchSpace.from_dict(space.to_dict()) == space


@pytest.mark.parametrize(
    "data, message",
    [
        ({"choises": {}}, "search_space: unknown key(s) choises"),
        ({"choices": {"kernel": [3, 4]}}, "search_space.choices.kernel: option 4"),
        ({"choices": {"kernels": [3]}}, "search_space.choices: unknown decision(s) kernels"),
        ({"choices": {"kind": []}}, "search_space.choices.kind: expected a non-empty list"),
        ({"choices": {"skip": ["yes"]}}, "search_space.choices.skip: option 'yes'"),
        ({"stages": {9: {}}}, "search_space.stages: stage 9"),
        ({"skeleton": "nosuch"}, "search_space.skeleton: unknown model 'nosuch'"),
        ({"choices": {"kernel": [3, 3]}}, "options repeat"),
    ],
)
def test_bad_space_config_names_the_field(data, message):
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict(data)
    assert message in str(info.value)


def test_decision_vectors_are_checked():
    space = SearchSpace.from_dict({})
    with pytest.raises(SpaceError, match="expected 42 decisions"):
        space.to_spec([0] * 3)
    with pytest.raises(SpaceError, match="stage0.kind = 5"):
        space.to_spec([5] + [0] * 41)
