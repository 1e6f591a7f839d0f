"""Bounds shared by every command: input resolutions, whole-number flags, and the memory a model needs.

Resolutions: shared by every place a user sets one (CLI flags, config fields).

`MAX_RESOLUTION` is 1024 px: four times the largest EfficientNet-EdgeTPU input (300 px for L)
and well past any proxy; a 1024-px float batch of one image already takes 12 MB per channel
layer. Larger inputs are refused before any allocation, as one line naming the setting, rather
than dying later in numpy or TensorFlow with an allocation traceback. A resolution of 0 or less is
refused too (it used to be read as "not given").
"""

from __future__ import annotations

import argparse
import os

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


# -- memory ----------------------------------------------------------------------------------------
# One estimate of what a model needs, from the spec's layers alone (search_space's counting: no
# TensorFlow), used by the search (nas.search.memory, for its largest candidate) and by every command
# that builds a model (`nas train`, `nas export`, `nas eval`, `nas latency measure`) before it builds one:
# float32 parameters times `param_copies` (training: weights, gradients, two optimiser slots and the
# moving average; inference: the weights) plus, per image of the batch, the widest tensor of every
# layer times `activation_copies` (training keeps them for the backward pass; inference holds a
# layer's input and output). Rough by design (within a factor of about two): it exists to refuse the
# model that cannot fit in one line, before TensorFlow dies allocating it.

GIB = 2**30
ACTIVATION_COPIES = 4  # training: the activations kept for the backward pass
PARAM_COPIES = 4  # the search's proxy: weights, gradients, two Adam moments
TRAIN_PARAM_COPIES = 5  # `nas train`: weights, gradients, two optimiser slots, the moving average
INFER_PARAM_COPIES, INFER_ACTIVATION_COPIES = 1, 2


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now; None where it cannot be told."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def activation_values(spec) -> int:
    """Values of the widest tensor of every layer for one image (input, expansion or output)."""
    total = 0
    for layer in spec.layers():
        widest = max(layer.in_ch, layer.expanded_ch, layer.out_ch)
        total += layer.in_size * layer.in_size * widest
    return total


def model_bytes(spec, batch: int, param_copies: int = PARAM_COPIES,
                activation_copies: int = ACTIVATION_COPIES) -> int:
    from search_space.counting import model_cost

    params = model_cost(spec).params
    return 4 * (param_copies * params + activation_copies * batch * activation_values(spec))


def check_model_memory(spec, batch: int, training: bool, lower: str, available: int | None = None) -> None:
    """Refuse (`UserError`, one line) a model that cannot be built (and, `training`, trained) at `batch`
    in the memory available now; `lower` names what the user can change."""
    available = available_memory() if available is None else available
    if available is None:
        return
    copies = (TRAIN_PARAM_COPIES, ACTIVATION_COPIES) if training else (INFER_PARAM_COPIES, INFER_ACTIVATION_COPIES)
    need = model_bytes(spec, batch, *copies)
    if need > available:
        from search_space.counting import model_cost

        what = "to train" if training else "to build and run"
        raise UserError(f"model '{spec.name}' would need about {need / GIB:,.1f} GiB {what} "
                        f"({model_cost(spec).params:,d} parameters, batch {batch} at {spec.resolution}x"
                        f"{spec.resolution}), {available / GIB:.1f} GiB is available: {lower}")
