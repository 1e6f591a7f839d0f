"""`nas train --mixed-precision`: bfloat16 activations with float32 weights, slots and averages; the same
seed in float32 and mixed_bfloat16 gives first-step losses that differ, within a stated bound.

On CPU the option's policy is `mixed_bfloat16` (session.py); float16 would need loss scaling, which
the recipe (like the reference on TPU) does not have.
"""

import contextlib
import io

import keras
import numpy as np
import tensorflow as tf
import yaml

from nas.cli import main
import nas.train.trainer
from nas.train.trainer import Trainer
from tests.test_train_cli import tiny_spec


def _conv_outputs(trainer) -> list[str]:
    """The dtypes of every convolution's output in the trainer's traced step (nested functions included)."""
    def ops(graph):
        yield from graph.get_operations()
        for function in graph._functions.values():
            if hasattr(function, "graph"):
                yield from ops(function.graph)

    steps = trainer._step_fn._list_all_concrete_functions()
    assert len(steps) == 1  # traced once
    return [op.outputs[0].dtype.name for op in ops(steps[0].graph)
            if op.type in ("Conv2D", "DepthwiseConv2dNative")]


def _first_step(policy: str):
    """The loss of the first training step of a tiny model (seed 0) on a fixed batch under `policy` (set
    as session.py sets it), and the trainer."""
    import dataclasses

    from nas.train.recipe import TrainConfig, resolve
    from search_space import get_spec
    from search_space.builder import build_model, reference_weight_map

    base = get_spec("efficientnet-edgetpu-S")
    spec = dataclasses.replace(base, name="mp", blocks=base.blocks[:3], width=0.25, depth=0.25, resolution=16,
                               num_classes=10, include_background=False, dropout=0.0, drop_connect=0.0)
    recipe, _ = resolve(TrainConfig(preset="small", batch_size=32, epochs=1), 32)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(1, 32, 16, 16, 3)).astype(np.float32)
    labels = rng.integers(0, 10, size=(1, 32))
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = build_model(spec, seed=0)
        trainer = Trainer(model, spec, recipe, tf.distribute.get_strategy(), reference_weight_map(model))
        loss = trainer.train_epoch(tf.data.Dataset.from_tensor_slices((images, labels)), epoch=0)["loss"]
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return loss, trainer


# The first step's loss is computed from identical weights and images: only the activations' precision
# differs. bfloat16 keeps 8 significant bits (relative rounding up to 2^-9 ~ 0.2% per value), and the
# rounding errors of a dozen layers mostly cancel in a mean over 32 images: 1% bounds the difference,
# while a float32 computation (no difference) or a broken one (NaN, a lost cast, wrong logits) fails.
FIRST_LOSS_BOUND = 0.01


def test_same_seed_float32_and_bfloat16_differ_within_bound():
    f32, plain = _first_step("float32")
    bf16, mixed = _first_step("mixed_bfloat16")
    assert set(_conv_outputs(plain)) == {"float32"}
    assert _conv_outputs(mixed) and set(_conv_outputs(mixed)) == {"bfloat16"}
    assert np.isfinite(bf16) and bf16 != f32, (f32, bf16)
    assert abs(bf16 - f32) <= FIRST_LOSS_BOUND * f32, (f32, bf16)


def test_mixed_precision_trains_in_bfloat16_and_keeps_float32_state(tmp_path, monkeypatch):
    trainers = []

    class Recording(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trainers.append(self)

    monkeypatch.setattr(nas.train.trainer, "Trainer", Recording)
    spec = tiny_spec(tmp_path / "s.yaml", dropout=0.0, drop_connect=0.0)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "offline", "max_train": 256},
                                      "train": {"batch_size": 32, "epochs": 3}}))
    run_dir = tmp_path / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["train", "--spec", str(spec), "--config", str(config), "--mixed-precision",
                     "--run-dir", str(run_dir)])
    assert code == 0, out.getvalue()
    assert keras.mixed_precision.global_policy().name == "float32"  # the run restores the process's policy

    # The traced step computes its convolutions in bfloat16; weights, slots and averages stay float32.
    mixed = trainers[0]
    dtypes = _conv_outputs(mixed)
    assert dtypes and set(dtypes) == {"bfloat16"}, dtypes
    assert all(v.dtype == "float32" for v in mixed.model.weights)

    lines = (run_dir / "metrics.csv").read_text().splitlines()
    losses = [float(line.split(",")[2]) for line in lines[1:]]
    assert len(losses) == 3 and all(np.isfinite(losses)) and losses[-1] < losses[0], losses

    reader = tf.train.load_checkpoint(str(run_dir))
    dtypes = reader.get_variable_to_dtype_map()
    averages = [n for n in dtypes if n.endswith("/ExponentialMovingAverage")]
    assert averages and {dtypes[n] for n in dtypes if n != "global_step"} == {tf.float32}
    assert all(np.isfinite(reader.get_tensor(n)).all() for n in averages)
