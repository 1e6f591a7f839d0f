"""The search space as `keras_tuner.HyperParameters`: one `Choice` per decision with a real choice.

`space_hyperparameters` builds the readable one of a `SearchSpace` (`stage0.kind` = 'mbconv' /
'fused_mbconv', ...) for anyone who wants keras-tuner's own tuners over this space;
`space_decisions` turns their values back into a decision vector. keras-tuner is imported on first use.
"""

from __future__ import annotations

from typing import Any, Sequence

from search_space.space import DECISIONS


def _keras_tuner():
    import keras_tuner

    return keras_tuner


def decision_names(cardinalities: Sequence[int]) -> list[str]:
    """Generic names `d00`, `d01`, ... (zero-padded so that they sort in decision order)."""
    width = len(str(max(len(cardinalities) - 1, 0)))
    return [f"d{i:0{width}d}" for i in range(len(cardinalities))]


def hyperparameters(cardinalities: Sequence[int], names: Sequence[str] | None = None,
                    values: Sequence[Sequence[Any]] | None = None):
    """A `keras_tuner.HyperParameters` with one `Choice` per decision that has more than one option.

    `names` default to `decision_names(cardinalities)` and each decision's `values` to its option
    indices. Single-option decisions are left out (they are always option 0).
    """
    names = list(names) if names is not None else decision_names(cardinalities)
    hp = _keras_tuner().HyperParameters()
    for i, n in enumerate(cardinalities):
        if n > 1:
            hp.Choice(names[i], list(values[i]) if values is not None else list(range(n)))
    return hp


def space_hyperparameters(space):
    """A `SearchSpace` as keras-tuner hyperparameters named `stage{i}.{decision}` with the real options.

    For a keras-tuner `Tuner` over this space: in its `build(hp)`, `space.to_spec(space_decisions(space,
    hp.values))` is the candidate. (keras-tuner stores a `skip` choice's True / False as 1 / 0.)
    """
    return hyperparameters(space.cardinalities, space.decision_names, _options(space))


def space_decisions(space, values: dict[str, Any]) -> list[int]:
    """The decision vector of keras-tuner values named as in `space_hyperparameters`."""
    out = []
    for name, opts in zip(space.decision_names, _options(space)):
        if len(opts) == 1:
            out.append(0)
        elif name not in values:
            raise ValueError(f"no value for hyperparameter '{name}'")
        else:
            try:
                out.append(opts.index(values[name]))  # True == 1: keras-tuner's 1 / 0 find True / False
            except ValueError:
                raise ValueError(f"hyperparameter '{name}' = {values[name]!r} is not one of {opts}") from None
    return out


def _options(space) -> list[list[Any]]:
    return [list(stage.options(d)) for stage in space.stages for d in DECISIONS]
