"""Property-based fuzzing (hypothesis) of the three parsers a user feeds directly: block strings
(`search_space/codec.py`), model spec YAML, and search configs. Every input either loads or raises the
project's `UserError` (one line, exit 2 at the CLI), never any other exception.

Each test sets `max_examples` explicitly and counts the inputs it actually tried (`TRIED`); the counts are
printed at the end of the module (`pytest -s`) and asserted, so a silently skipped fuzz cannot pass.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.common.errors import UserError
from search_space import ModelSpec
from search_space.codec import decode_block, encode_block
from tests.search_helpers import TINY

# Sized so the module takes about a minute on a shared 2-core CPU (config loading is the slow part).
EXAMPLES = {"block strings": 1000, "block tokens": 600, "spec yaml text": 400, "spec fields": 300,
            "config yaml text": 400, "config fields": 600}
TRIED: dict[str, int] = {name: 0 for name in EXAMPLES}
FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                      max_leaves=8)
TOKENS = ["r", "k", "s", "e", "i", "o", "se", "c", "noskip", "d", "a", "p", "x"]
token = st.builds(lambda key, value: key if key == "noskip" else f"{key}{value}",
                  st.sampled_from(TOKENS),
                  st.one_of(st.integers(-3, 2000).map(str), st.sampled_from(["11", "22", "12", "0.25", "1e9", "", "nan",
                                                                           "٣", "0", "-0"])))


def _loads_or_user_error(call, *args):
    try:
        return call(*args)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return None


@settings(max_examples=EXAMPLES["block strings"], **FUZZ)
@given(st.one_of(st.text(max_size=40), st.text(alphabet="rksei0123456789_.cnopd-", max_size=40)))
def test_fuzz_block_strings(text):
    TRIED["block strings"] += 1
    _loads_or_user_error(decode_block, text)


@settings(max_examples=EXAMPLES["block tokens"], **FUZZ)
@given(st.lists(token, min_size=1, max_size=10))
def test_fuzz_block_tokens_and_round_trip(tokens):
    TRIED["block tokens"] += 1
    block = _loads_or_user_error(decode_block, "_".join(tokens))
    if block is not None:  # whatever decodes, re-encodes to the same block
        assert decode_block(encode_block(block)) == block


@settings(max_examples=EXAMPLES["spec yaml text"], **FUZZ)
@given(st.one_of(st.text(max_size=200), values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
                 st.sampled_from(["a: 2001-13-45", "a: !!python/object:os.system x", "[[[[[[", "a: &x [*x]",
                                  "?\n:", "- !!binary x", "a: !!timestamp 2020-99-99", "\t-"])))
def test_fuzz_spec_yaml_text(text):
    TRIED["spec yaml text"] += 1
    _loads_or_user_error(ModelSpec.from_yaml, text, "fuzz.yaml")




def _base_spec() -> dict:
    from tests.export_helpers import tiny_spec

    return yaml.safe_load(tiny_spec().to_yaml())


@settings(max_examples=EXAMPLES["spec fields"], **FUZZ)
@given(st.data())
def test_fuzz_spec_fields(data):
    TRIED["spec fields"] += 1
    spec = _base_spec()
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(spec) + ["unknown_field"]))
        spec[key] = data.draw(st.one_of(values, st.lists(token.map(str), max_size=3)))
    _loads_or_user_error(ModelSpec.from_dict, spec, "fuzz")


def _paths(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))


CONFIG_PATHS = sorted(_paths(TINY), key=str)


@settings(max_examples=EXAMPLES["config fields"], **FUZZ)
@given(st.data())
def test_fuzz_search_config_fields(data):
    from nas.search.config import config_from_dict

    TRIED["config fields"] += 1
    config = copy.deepcopy(TINY)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(CONFIG_PATHS))
        node = config
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[path[-1]] = data.draw(values)
    if data.draw(st.booleans()):
        section = data.draw(st.sampled_from(sorted(config)))
        if isinstance(config[section], dict):
            config[section][data.draw(st.text(max_size=6))] = data.draw(scalars)
    _loads_or_user_error(config_from_dict, config, "fuzz")


@settings(max_examples=EXAMPLES["config yaml text"], **FUZZ)
@given(st.one_of(st.text(max_size=120), values.map(yaml.safe_dump),
                 st.sampled_from(["run: {seed: 2001-13-45}", "run:\n  trials: [", "proxy: {resolution: 1e400}",
                                  "data: !!binary AAAA", "\ufeffrun: {}", "run: {trials: 0x10}"])))
def test_fuzz_search_config_files(tmp_path_factory, text):
    from nas.search.config import load_config

    TRIED["config yaml text"] += 1
    path = tmp_path_factory.mktemp("cfg") / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", errors="replace"))
    _loads_or_user_error(load_config, path)


def test_fuzz_counts():
    """Runs last in this module: every fuzz test tried its full budget."""
    print("\nfuzz inputs tried: " + ", ".join(f"{name} {TRIED[name]}" for name in EXAMPLES)
          + f"; total {sum(TRIED.values())}")
    if all(TRIED.values()):  # the module ran as a whole (not a -k selection)
        assert all(TRIED[name] >= EXAMPLES[name] for name in EXAMPLES), TRIED
