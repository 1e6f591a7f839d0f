import pytest

from search_space.errors import UserError
from search_space.registries import Registry


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
