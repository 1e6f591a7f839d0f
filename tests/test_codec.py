import pytest

from search_space import decode_block, encode_block
from search_space.codec import BlockStringError
from search_space.registry import EDGETPU_BLOCKS, EFFICIENTNET_BLOCKS, MNASNET_A1_BLOCKS, MNASNET_B1_BLOCKS

PUBLISHED = EDGETPU_BLOCKS + EFFICIENTNET_BLOCKS + MNASNET_A1_BLOCKS + MNASNET_B1_BLOCKS


@pytest.mark.parametrize("block_string", PUBLISHED)
def test_published_strings_round_trip_unchanged(block_string):
    assert encode_block(decode_block(block_string)) == block_string


def test_decode_fields_of_a_fused_noskip_block():
    block = decode_block("r1_k3_s11_e4_i24_o24_c1_noskip")
    assert (block.kind, block.repeats, block.kernel, block.stride, block.expand_ratio) == ("fused_mbconv", 1, 3, 1, 4)
    assert (block.in_filters, block.out_filters, block.se_ratio, block.skip) == (24, 24, 0.0, False)


def test_decode_fields_of_an_se_block():
    block = decode_block("r3_k5_s22_e3_i24_o40_se0.25")
    assert (block.kind, block.stride, block.se_ratio, block.skip) == ("mbconv", 2, 0.25, True)


def test_token_order_does_not_matter_and_encoding_is_canonical():
    assert encode_block(decode_block("noskip_c1_o24_i24_e4_s11_k3_r1")) == "r1_k3_s11_e4_i24_o24_c1_noskip"
    assert encode_block(decode_block("r1_k3_s11_e1_i32_o16_c0")) == "r1_k3_s11_e1_i32_o16"


def test_neutral_values_of_unused_grammar_tokens_are_accepted():
    assert encode_block(decode_block("r1_k3_s11_e1_i32_o16_f0_p0_cc0")) == "r1_k3_s11_e1_i32_o16"


@pytest.mark.parametrize(
    "block_string, token",
    [
        ("r1_k3_s12_e1_i32_o16", "s12"),  # unequal strides
        ("r1_k3_s2_e1_i32_o16", "s2"),  # stride must be exactly two digits
        ("r1_k3_s222_e1_i32_o16", "s222"),
        ("r1_k3_s11_e1_i32_o16_x5", "x5"),
        ("r1_k3_s11_e1_i32_o16_c2", "c2"),
        ("r1_k3_s11_e1_i32_o16_f1", "f1"),
        ("r1_k3_s11_e1_i32_o16_se2", "se2"),
        ("r1_k3_s11_e1_i32_o16_sex", "sex"),
        ("r1_k4_s11_e1_i32_o16", "k4"),
        ("r0_k3_s11_e1_i32_o16", "r0"),
        ("r1_k3_s11_e1_i32_o16_skip", "skip"),
    ],
)
def test_malformed_strings_name_the_offending_token(block_string, token):
    with pytest.raises(BlockStringError) as info:
        decode_block(block_string)
    assert f"'{token}'" in str(info.value)


def test_missing_and_repeated_tokens_are_rejected():
    with pytest.raises(BlockStringError, match="missing token"):
        decode_block("r1_k3_s11_e1_i32")
    with pytest.raises(BlockStringError, match="given twice"):
        decode_block("r1_r2_k3_s11_e1_i32_o16")
    with pytest.raises(BlockStringError, match="empty"):
        decode_block("")
