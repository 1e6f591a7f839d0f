"""`nas train --mixed-precision`: bfloat16 activations with float32 weights, slots and averages.

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
from nas.train import loop
from tests.test_train_cli import tiny_spec


def test_mixed_precision_trains_in_bfloat16_and_keeps_float32_state(tmp_path, monkeypatch):
    trainers = []

    class Recording(loop.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trainers.append(self)

    monkeypatch.setattr(loop, "Trainer", Recording)
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

    model = trainers[0].model
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert all(v.dtype == "float32" for v in model.weights)

    lines = (run_dir / "metrics.csv").read_text().splitlines()
    losses = [float(line.split(",")[2]) for line in lines[1:]]
    assert len(losses) == 3 and all(np.isfinite(losses)) and losses[-1] < losses[0], losses

    reader = tf.train.load_checkpoint(str(run_dir))
    dtypes = reader.get_variable_to_dtype_map()
    averages = [n for n in dtypes if n.endswith("/ExponentialMovingAverage")]
    assert averages and {dtypes[n] for n in dtypes if n != "global_step"} == {tf.float32}
    assert all(np.isfinite(reader.get_tensor(n)).all() for n in averages)
