"""Property-based fuzzing (hypothesis) of the three parsers a user feeds directly: block strings
(`search_space/codec.py`), model spec YAML, and search configs. Every input either loads or raises the
project's `UserError` (one line, exit 2 at the CLI), never any other exception; and whatever loads
satisfies the schema's own bounds (`SPEC_BOUNDS`, `BLOCK_BOUNDS`, `CHOICE_BOUNDS`, each setting's
min / max / above, finite floats, whole numbers within `INT_MAX`), checked here independently of the
code that enforces them. The special floats (`.inf`, `-.inf`, `.nan`, `-0.0`, 1e308) are among the
values of every numeric field: in the random strategies, and field by field in
`test_special_floats_in_every_*` so no field depends on the draw.

Each test sets `max_examples` explicitly and counts the inputs it actually tried (`TRIED`); the counts are
printed at the end of the module (`pytest -s`) and asserted, so a silently skipped fuzz cannot pass.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.common.errors import UserError
from nas.common.schema import INT_MAX
from search_space import ModelSpec
from search_space.codec import BLOCK_BOUNDS, decode_block, encode_block
from search_space.space import CHOICE_BOUNDS, SearchSpace
from search_space.spec import CHANNEL_BOUNDS, SPEC_BOUNDS
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.search_helpers import TINY

# Sized so the module takes about a minute on a shared 2-core CPU (config loading is the slow part).
EXAMPLES = {"block strings": 1000, "block tokens": 600, "spec yaml text": 400, "spec fields": 300,
            "config yaml text": 400, "config fields": 600}
TRIED: dict[str, int] = {name: 0 for name in EXAMPLES}
FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True)

SPECIALS = (math.inf, -math.inf, math.nan, -0.0, 1e308, -1e308)
SPECIAL_YAML = (".inf", "-.inf", ".nan", "-0.0", "1.0e+308", "-1.0e+308", "-1", "0", "1.0e+400")  # YAML 1.1 floats need a dot
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from(SPECIALS),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                      max_leaves=8)
TOKENS = ["r", "k", "s", "e", "i", "o", "se", "c", "noskip", "d", "a", "p", "x"]
token = st.builds(lambda key, value: key if key == "noskip" else f"{key}{value}",
                  st.sampled_from(TOKENS),
                  st.one_of(st.integers(-3, 2000).map(str), st.sampled_from(["11", "22", "12", "0.25", "1e9", "", "nan",
                                                                           "٣", "0", "-0", "inf", "-0.0", "1e308",
                                                                           "9" * 400])))


def _loads_or_user_error(call, *args):
    try:
        loaded = call(*args)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return None
    _check_loaded(loaded)
    return loaded


def _in(value, low, high, name):
    assert not isinstance(value, bool) and isinstance(value, (int, float)), (name, value)
    assert math.isfinite(value) and low <= value <= high, (name, value, low, high)


def _check_block(block):
    for name, (low, high) in BLOCK_BOUNDS.items():
        _in(getattr(block, name), low, high, f"block {name}")


def _check_spec(spec):
    for name, (low, high) in SPEC_BOUNDS.items():
        _in(getattr(spec, name), low, high, name)
    for name in ("width", "depth", "bn_epsilon"):  # no zero (nor negative) widths or epsilons
        assert getattr(spec, name) > 0, (name, getattr(spec, name))
    for name, (low, high) in CHANNEL_BOUNDS.items():
        for value in getattr(spec, name):
            _in(value, low, high, name)
    assert min(spec.std) > 0
    for block in spec.blocks:
        _check_block(block)


def _check_section(section, path):
    """Every numeric setting within its own field's checks, finite, and whole numbers within INT_MAX."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            _check_section(value, f"{path}.{f.name}")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        where, meta = f"{path}.{f.name}", f.metadata
        assert math.isfinite(value), (where, value)
        assert value >= meta.get("min", -math.inf) and value <= meta.get("max", math.inf), (where, value)
        assert value > meta.get("above", -math.inf), (where, value)
        if isinstance(value, int) and "max" not in meta:
            assert abs(value) <= INT_MAX, (where, value)


def _check_loaded(loaded):
    from nas.search.config import SearchConfig

    if isinstance(loaded, ModelSpec):
        _check_spec(loaded)
    elif isinstance(loaded, SearchConfig):
        _check_spec(loaded.space.skeleton)
        for stage in loaded.space.stages:
            for name, (low, high) in CHOICE_BOUNDS.items():
                for value in getattr(stage, name):
                    _in(value, low, high, name)
        for f in dataclasses.fields(loaded):
            value = getattr(loaded, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, SearchSpace):
                _check_section(value, f.name)
    elif loaded is not None and hasattr(loaded, "kernel"):  # a BlockSpec
        _check_block(loaded)


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


def _numeric_spec_fields():
    base = _base_spec()
    return [name for name, value in base.items() if isinstance(value, (int, float, list)) and name != "blocks"
            and not isinstance(value, bool)]


@pytest.mark.parametrize("special", SPECIAL_YAML)
def test_special_floats_in_every_spec_field_and_block_token(special):
    """Each numeric spec field (mean and std per channel) and each numeric block-string token, given each
    special value as YAML text: loads within bounds or is refused in one line."""
    from tests.export_helpers import tiny_spec

    text = tiny_spec().to_yaml()
    for name in _numeric_spec_fields():
        data = yaml.safe_load(text)
        data[name] = [data[name][0], yaml.safe_load(special), data[name][2]] if isinstance(data[name], list) else "X"
        doc = yaml.safe_dump(data).replace("X", special) if data[name] == "X" else yaml.safe_dump(data)
        _loads_or_user_error(ModelSpec.from_yaml, doc, "fuzz.yaml")
    for key in ("r", "k", "e", "i", "o", "se"):
        tokens = {"r": "1", "k": "3", "s": "11", "e": "1", "i": "16", "o": "16"}
        tokens[key] = special
        _loads_or_user_error(decode_block, "_".join(k + v for k, v in tokens.items()))


def _numeric_config_paths():
    """Every numeric setting of a search config: each section's fields (the mnas controller's options, the
    execution resources) and every numeric field of the search space's skeleton and choices."""
    from nas.controllers import CONTROLLERS
    from nas.data import DataConfig
    from nas.execution.config import ExecutionConfig, Resources
    from nas.proxy.task import ProxyConfig
    from nas.search.config import LatencyConfig, RunConfig
    from nas.search.reward import RewardConfig

    paths = []
    sections = {"run": RunConfig, "latency": LatencyConfig, "reward": RewardConfig, "proxy": ProxyConfig,
                "data": DataConfig}
    for section, cls in sections.items():
        paths += [(section, f.name) for f in dataclasses.fields(cls) if f.metadata and "choices" not in f.metadata]
    paths += [("controller", f.name) for f in dataclasses.fields(CONTROLLERS.get("mnas").Options)
              if f.metadata and "choices" not in f.metadata]
    paths += [("execution", f.name) for f in dataclasses.fields(ExecutionConfig) if f.metadata and "choices" not in f.metadata]
    paths += [("execution", "resources_per_trial", f.name) for f in dataclasses.fields(Resources)]
    paths += [("search_space", "skeleton", name) for name in SPEC_BOUNDS]
    paths += [("search_space", "choices", name) for name in CHOICE_BOUNDS]
    return paths


@pytest.mark.parametrize("special", SPECIAL_YAML)
def test_special_floats_in_every_search_config_field(tmp_path, special):
    from nas.search.config import load_config

    for path in _numeric_config_paths():
        config = copy.deepcopy(TINY)
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = ["X"] if path[1] == "choices" else "X"
        file = tmp_path / "fuzz.yaml"
        file.write_text(yaml.safe_dump(config).replace("X", special))
        _loads_or_user_error(load_config, file)


@pytest.mark.parametrize("field, value, needle", [("width", ".inf", "width must be a number in (0, 100]"),
                                                  ("bn_epsilon", "-1", "bn_epsilon must be a number in (0, 1]"),
                                                  ("width", "1.0e+308", "width must be a number"),
                                                  ("std", "[128, .nan, 128]", "std values must be numbers")])
def test_special_values_at_the_cli_are_one_line_and_exit_2(tmp_path, capsys, field, value, needle):
    path = tmp_path / "spec.yaml"
    path.write_text(f"blocks: [r1_k3_s11_e1_i32_o16]\n{field}: {value}\n")
    code, _, err = run_cli(capsys, "latency", "predict", path)
    assert_one_line_error(code, err, needle)


def test_special_values_in_a_search_config_at_the_cli_are_one_line_and_exit_2(tmp_path, capsys):
    config = copy.deepcopy(TINY)
    config["proxy"]["learning_rate"] = "X"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config).replace("X", ".nan"))
    code, _, err = run_cli(capsys, "search", "--config", path, "--run-dir", tmp_path / "run")
    assert_one_line_error(code, err, "proxy.learning_rate: must be a finite number")
    assert not (tmp_path / "run" / "journal.jsonl").exists()


def test_fuzz_counts():
    """Runs last in this module (pytest-xdist's loadscope keeps a module on one worker): every fuzz test
    tried its full budget. Asserted unconditionally: a fuzz test that tried nothing fails here."""
    print("\nfuzz inputs tried: " + ", ".join(f"{name} {TRIED[name]}" for name in EXAMPLES)
          + f"; total {sum(TRIED.values())}")
    assert all(TRIED[name] >= EXAMPLES[name] for name in EXAMPLES), TRIED
