"""Input resolution bounds, shared by every place a user sets one (CLI flags, config fields).

`MAX_RESOLUTION` is 1024 px: four times the largest EfficientNet-EdgeTPU input (300 px for L)
and well past any proxy; a 1024-px float batch of one image already takes 12 MB per channel
layer. Larger inputs are refused before any allocation, as one line naming the setting, rather
than dying later in numpy or TensorFlow with an allocation traceback. A resolution of 0 or less is
refused too (it used to be read as "not given").
"""

from __future__ import annotations

import argparse

from nas.common.errors import UserError

MIN_RESOLUTION = 1
MAX_RESOLUTION = 1024


def check_resolution(value: object, setting: str, minimum: int = MIN_RESOLUTION) -> int:
    """`value` as a resolution in [minimum, MAX_RESOLUTION], else a `UserError` naming `setting`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{setting}: expected a whole number of pixels, got {value!r}")
    if not minimum <= value <= MAX_RESOLUTION:
        raise UserError(f"{setting}: {value} is out of range; give {minimum} to {MAX_RESOLUTION} pixels")
    return value


def int_between(minimum: int, maximum: int | None = None, unit: str = ""):
    """An argparse type: a whole number in [minimum, maximum] (a usage error names the flag)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number{' of' + unit if unit else ''}, got '{text}'") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is out of range; give {minimum} to {maximum}{unit}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def int_at_least(minimum: int):
    return int_between(minimum)


resolution_arg = int_between(MIN_RESOLUTION, MAX_RESOLUTION, " pixels")
