"""Model weights on disk: this project's checkpoints and the released TF1 ones share one layout.

Both are TensorFlow checkpoints (`model.ckpt.index` + `model.ckpt.data-*`) whose variables carry the
reference's TF1 names, `<model name>/<scope>/<weight>` (`search_space.builder.reference_weight_map`,
which reads layer names only through `search_space.layer_names`),
so one loader maps either onto the builder's layers by name and checks every shape.

- A project checkpoint (`save_checkpoint`) is a directory: `spec.yaml` (the architecture) beside
  `model.ckpt*` and a `checkpoint` state file. `load_model(directory)` needs nothing else.
- A released checkpoint (`efficientnet-edgetpu-S/model.ckpt*`) has no spec: its variable scope names a
  registered model. It holds `<name>/ExponentialMovingAverage` twins of every model variable, which the
  reference evaluation restores, so they are preferred (`use_ema=False` takes the raw weights), and
  optimizer slots and `global_step`, which are ignored. Its fused blocks were trained with the stride
  on the 1x1 project conv (the code that produced the 2019 release did; later code moved it to the 3x3
  expand conv: same shapes, other outputs; docs/guides/reproducing.md), so it is built with `fused_stride_on="project"` unless
  the caller says otherwise.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from search_space import REGISTRY, ModelSpec
from search_space.registry import get_spec

from nas.common.errors import UserError
from nas.common.files import write_text

SPEC_FILE = "spec.yaml"
PREFIX = "model.ckpt"
EMA = "ExponentialMovingAverage"
# Per-variable copies a training checkpoint holds besides the weights themselves.
_SLOTS = frozenset({EMA, "RMSProp", "RMSProp_1", "Momentum", "Adam", "Adam_1"})
_EXAMPLES = 3


@dataclass(frozen=True)
class Checkpoint:
    """A readable TF checkpoint: where it is, its variables' shapes and (project ones) its spec."""

    path: Path  # as the user named it
    prefix: str  # the TF checkpoint prefix, e.g. `dir/model.ckpt`
    shapes: dict[str, list[int]]
    spec: ModelSpec | None  # from spec.yaml beside it; None for released checkpoints

    @property
    def released(self) -> bool:
        return self.spec is None

    @property
    def model_variables(self) -> list[str]:
        """Scoped variables that are weights, not EMA twins or optimizer slots."""
        return [n for n in self.shapes if "/" in n and not _SLOTS & set(n.split("/")[1:])]

    @property
    def model_name(self) -> str | None:
        """The top-level scope of the model variables (the model's name)."""
        scopes = collections.Counter(n.split("/", 1)[0] for n in self.model_variables)
        return scopes.most_common(1)[0][0] if scopes else None

    @property
    def has_ema(self) -> bool:
        return any(n.endswith("/" + EMA) for n in self.shapes)


@dataclass(frozen=True)
class Loaded:
    """A built model, the spec it was built from, and where its weights came from."""

    model: object  # keras.Model
    spec: ModelSpec
    checkpoint: Checkpoint | None
    ema: bool
    seed: int = 0

    def describe(self) -> str:
        """One line for the user: the weights' origin and the choices made while loading them."""
        if self.checkpoint is None:
            return (f"weights: freshly initialised (seed {self.seed}; no --ckpt given), "
                    "so its predictions mean nothing")
        kind = "released TF1 checkpoint" if self.checkpoint.released else "checkpoint"
        text = f"weights: {kind} '{self.checkpoint.prefix}'" + (" (moving averages)" if self.ema else "")
        if any(layer.kind == "fused_mbconv" and layer.stride > 1 for layer in self.spec.layers()):
            place = ("the 1x1 project conv, as the 2019 release did" if self.spec.fused_stride_on == "project"
                     else "the 3x3 expand conv")
            text += f"; fused blocks put their stride on {place} (--fused-stride-on to change)"
        return text


def save_checkpoint(model, spec: ModelSpec, directory: str | os.PathLike) -> Path:
    """Write `model`'s weights and `spec` into `directory` (created); returns the directory.

    `model` must come from `build_model(spec)` (its name is the variables' scope).
    """
    import keras
    import tensorflow as tf

    from search_space.builder import reference_weight_map

    if model.name != spec.name:
        raise ValueError(f"model '{model.name}' was not built from spec '{spec.name}'")
    directory = Path(directory)
    write_text(directory / SPEC_FILE, spec.to_yaml())
    weights = reference_weight_map(model)
    tmp_prefix = directory / f".{PREFIX}.{os.getpid()}.tmp"
    try:
        # SaveV2 writes the variables under exactly these names, as the TF1 saver did; under a
        # temporary prefix first, so a failure or kill never leaves a partial checkpoint under PREFIX.
        tf.raw_ops.SaveV2(
            prefix=str(tmp_prefix),
            tensor_names=list(weights),
            shape_and_slices=[""] * len(weights),
            tensors=[keras.ops.convert_to_numpy(v) for v in weights.values()],
        )
        _publish(tmp_prefix, directory / PREFIX)
    except tf.errors.OpError as exc:
        raise UserError(f"cannot write checkpoint into '{directory}': {exc.message.splitlines()[0]}") from None
    except OSError as exc:
        raise UserError(f"cannot write checkpoint into '{directory}': {exc.strerror or exc}") from None
    finally:
        for leftover in directory.glob(f"{tmp_prefix.name}*"):
            leftover.unlink(missing_ok=True)
    write_text(directory / "checkpoint", f'model_checkpoint_path: "{PREFIX}"\n'
                                         f'all_model_checkpoint_paths: "{PREFIX}"\n')
    return directory


def _publish(tmp_prefix: Path, prefix: Path) -> None:
    """fsync the temporary checkpoint's files, rename the data shards first and the index last: a
    reader finds an `.index` only once every shard it points to is whole."""
    files = sorted(tmp_prefix.parent.glob(f"{tmp_prefix.name}.*"), key=lambda p: p.name.endswith(".index"))
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(file, prefix.with_name(prefix.name + file.name[len(tmp_prefix.name):]))


def _prefix(path: Path) -> str:
    """The checkpoint prefix for a directory, a prefix, or one of its `.index` / `.data-*` files."""
    if path.is_dir():
        state = None
        if (path / "checkpoint").is_file():
            import tensorflow as tf

            state = tf.train.latest_checkpoint(str(path))
        if state and Path(state + ".index").is_file():
            return state
        indexes = sorted(path.glob("*.index"), key=lambda p: p.stat().st_mtime)
        if not indexes:
            raise UserError(f"no checkpoint (model.ckpt*.index) in directory '{path}'")
        return str(indexes[-1].with_suffix(""))  # the newest
    if Path(str(path) + ".index").is_file():
        return str(path)
    if path.suffix == ".index" and path.is_file():
        return str(path.with_suffix(""))
    if ".data-" in path.name and path.is_file():
        return str(path.with_name(path.name.split(".data-")[0]))
    if not path.exists():
        raise UserError(f"checkpoint '{path}' does not exist")
    raise UserError(f"'{path}' is not a TensorFlow checkpoint "
                    "(give its directory, holding model.ckpt*.index, or its prefix)")


def open_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Find and read a checkpoint's variable list (and `spec.yaml`, when beside it)."""
    path = Path(path)
    prefix = _prefix(path)  # path mistakes fail before TensorFlow loads

    import tensorflow as tf

    try:
        shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError, IndexError) as exc:
        raise UserError(_damaged(path, exc)) from None
    spec_file = Path(prefix).parent / SPEC_FILE
    spec = get_spec(spec_file) if spec_file.is_file() else None
    return Checkpoint(path=path, prefix=prefix, shapes=dict(shapes), spec=spec)


def _examples(items: list[str]) -> str:
    more = f", ... ({len(items) - _EXAMPLES} more)" if len(items) > _EXAMPLES else ""
    return ", ".join(items[:_EXAMPLES]) + more


def _check_model_name(checkpoint: Checkpoint, name: str) -> None:
    found = checkpoint.model_name
    if found is None:
        raise UserError(f"checkpoint '{checkpoint.path}' holds no model variables")
    if found != name:
        raise UserError(f"checkpoint '{checkpoint.path}' is of model '{found}', not '{name}' "
                        f"(pass --model {found}, or the spec it was trained with)")


def restore(model, checkpoint: Checkpoint, use_ema: bool = True) -> bool:
    """Assign every weight of `model` from `checkpoint`, by reference name, shapes checked.

    Returns whether the moving-average twins were used. Raises `UserError` naming some of the
    variables when the checkpoint is of another model, lacks variables, or has other shapes.
    """
    import tensorflow as tf

    from search_space.builder import reference_weight_map

    where = f"checkpoint '{checkpoint.path}'"
    _check_model_name(checkpoint, model.name)
    wanted = reference_weight_map(model)
    ema = use_ema and checkpoint.has_ema
    source = {name: f"{name}/{EMA}" if ema else name for name in wanted}
    missing = [source[n] for n in wanted if source[n] not in checkpoint.shapes]
    if missing:
        raise UserError(f"{where} lacks {len(missing)} of the {len(wanted)} variables of '{model.name}', "
                        f"e.g. {_examples(missing)}")
    wrong = [f"{n} {checkpoint.shapes[source[n]]} (model: {list(v.shape)})"
             for n, v in wanted.items() if list(checkpoint.shapes[source[n]]) != list(v.shape)]
    if wrong:
        raise UserError(f"{where} has {len(wrong)} variables shaped unlike '{model.name}', e.g. {_examples(wrong)}")
    extra = sorted(set(checkpoint.model_variables) - set(wanted))
    if extra:
        raise UserError(f"{where} has {len(extra)} variables '{model.name}' lacks, e.g. {_examples(extra)}: "
                        "it is of another architecture")
    try:
        reader = tf.train.load_checkpoint(checkpoint.prefix)
        for name, variable in wanted.items():
            variable.assign(reader.get_tensor(source[name]))
    except (tf.errors.OpError, IndexError, ValueError) as exc:  # a truncated or corrupt .data-* shard
        raise UserError(_damaged(checkpoint.path, exc)) from None
    return ema


def _damaged(path, exc: Exception) -> str:
    reason = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).splitlines()[0]
    return (f"cannot read checkpoint '{path}': it is truncated or corrupt ({reason}); "
            f"copy it again or point to another checkpoint")


def load_model(
    checkpoint: str | os.PathLike | None = None,
    spec: ModelSpec | None = None,
    *,
    fused_stride_on: str | None = None,
    use_ema: bool = True,
    seed: int = 0,
    batch_size: int | None = None,
) -> Loaded:
    """Build a model and restore its weights: the one way the CLI turns (spec, checkpoint) into a model.

    Without `spec`, a project checkpoint's own spec is used, or the registered model a released
    checkpoint is scoped by. Without `checkpoint`, the weights are freshly initialised with `seed`.
    `fused_stride_on` overrides the fused blocks' stride placement ("project" for released checkpoints).
    """
    ckpt = open_checkpoint(checkpoint) if checkpoint is not None else None
    if spec is None:
        if ckpt is None:
            raise UserError("no model given: pass --model NAME or --spec FILE (or a --ckpt that holds a spec)")
        spec = ckpt.spec or REGISTRY.get(ckpt.model_name or "")
        if spec is None:
            raise UserError(f"checkpoint '{ckpt.path}' holds model '{ckpt.model_name}', which is not registered "
                            "and has no spec.yaml beside it: pass --spec FILE")
    if ckpt is not None:
        _check_model_name(ckpt, spec.name)  # before building a model for nothing
    if fused_stride_on is None:
        fused_stride_on = "project" if ckpt is not None and ckpt.released else spec.fused_stride_on
    spec = dataclasses.replace(spec, fused_stride_on=fused_stride_on)
    from nas.common.bounds import check_model_memory

    # Export and eval run batches of up to 32 images (eval's classifier); a model that cannot fit is one line.
    check_model_memory(spec, batch_size or 32, False, "use a smaller spec (width, resolution or filters)")
    from search_space.builder import build_model  # TensorFlow loads here, after the cheap checks

    model = build_model(spec, seed=seed, drop_connect=False, batch_size=batch_size)
    ema = restore(model, ckpt, use_ema) if ckpt is not None else False
    return Loaded(model=model, spec=spec, checkpoint=ckpt, ema=ema, seed=seed)
