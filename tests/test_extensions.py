import pytest

from search_space.errors import UserError
from search_space.extensions import Registry


def test_register_returns_object_and_keeps_order():
    reg = Registry("widget")

    @reg.register("b", "bee")
    def b():
        return 2

    @reg.register("a")
    class A:
        pass

    assert b() == 2 and reg.get("b") is b and reg.get("bee") is b and reg.get("a") is A
    assert reg.names() == ("b", "a")
    assert list(reg.items()) == [("b", b), ("a", A)]
    assert "bee" in reg and "a" in reg and "c" not in reg


def test_unknown_name_is_a_user_error_listing_known():
    reg = Registry("widget")
    reg.register("x")(1)
    reg.register("y")(2)
    with pytest.raises(UserError) as err:
        reg.get("z")
    assert str(err.value) == "unknown widget 'z' (known: x, y)"


def test_duplicate_registration_is_a_bug():
    reg = Registry("widget")
    reg.register("x")(1)
    with pytest.raises(ValueError):
        reg.register("x")(2)
    with pytest.raises(ValueError):
        reg.register("y", "x")(2)


from latency import LATENCY_SOURCES, LatencyModel, make_latency_model  # noqa: E402
from latency.profiling import PROFILERS, make_profiler  # noqa: E402

# What a source needs that this machine or the call may lack: its one-line error names it.
NEEDS = {"lut": "needs a table file", "edgetpu": "edgetpu_compiler"}


@pytest.mark.parametrize("name", LATENCY_SOURCES.names())
def test_every_latency_source_is_made_or_says_what_it_needs(name):
    try:
        model = make_latency_model(name)
    except UserError as exc:
        assert name in NEEDS and NEEDS[name] in str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(model, LatencyModel)
        # `auto` is no model of its own: it makes the source it chose (sim without an Edge TPU)
        assert model.name == name or (name == "auto" and model.name in ("sim", "edgetpu"))


@pytest.mark.parametrize("name", PROFILERS.names())
def test_every_profiler_is_made_or_says_what_it_needs(name):
    try:
        profiler = make_profiler(name)
    except UserError as exc:
        assert name in NEEDS and NEEDS[name] in str(exc)
    else:
        assert profiler.source == name


def test_unknown_sources_are_user_errors_naming_the_known():
    with pytest.raises(UserError, match=r"^unknown latency source 'gpu' \(known: sim, lut, tflite-cpu, edgetpu, auto\)$"):
        make_latency_model("gpu:fast")
    with pytest.raises(UserError, match=r"^unknown profiling source 'lut' \(known: tflite-cpu, edgetpu, sim\)$"):
        make_profiler("lut")
    assert make_profiler("tflite-cpu:float").quantization == "float32"
