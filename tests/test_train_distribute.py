"""Scale-out: MirroredStrategy over two logical CPU devices equals one device; two loopback workers complete.

Each run is a subprocess: logical devices must be configured before TensorFlow initialises.
Dropout and drop-connect are off in the specs: their masks are drawn per replica, so with them the two
runs would differ by design, not by float noise.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.test_train_cli import tiny_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWO_CPUS = ("import sys, tensorflow as tf; cpu = tf.config.list_physical_devices('CPU')[0]; "
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2); "
            "from nas.cli import main; sys.exit(main(sys.argv[1:]))")


def _run(args, env_extra=None, two_cpus=False, wait=True):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    cmd = [sys.executable, "-c", TWO_CPUS, *map(str, args)] if two_cpus else [sys.executable, "-m", "nas", *map(str, args)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    return out


def _setup(tmp_path, epochs=2, sync=True):
    spec = tiny_spec(tmp_path / "s.yaml", dropout=0.0, drop_connect=0.0)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "offline", "max_train": 256},
                                      "train": {"batch_size": 32, "epochs": epochs, "sync_batch_norm": sync}}))
    return ["train", "--spec", spec, "--config", config]


def _metrics(run_dir):
    lines = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    return np.array([[float(x) for x in line.split(",")[:6]] for line in lines])


def two_replica_steps(steps=4):
    """Run in a subprocess whose CPU is split in two logical devices: `Trainer.train_epoch` (the loop's real
    input path: `experimental_distribute_dataset` over a tf.data dataset of global batches) on one device
    and under MirroredStrategy over both, from the same initial weights, on the same global batches of 8.
    Each replica gets its own half (4 different images): only the gradient all-reduce makes the two
    replicas' updates the whole batch's.

    Batch norm is frozen (inference statistics, its scale and offset not trained), so the forward pass of
    an image does not depend on which other images share its replica: the two runs must then agree up to
    the order of float sums. (Synchronised batch norm, which would make per-replica statistics global,
    hangs with two logical CPU devices in TF 2.21: recipe.py.) Compared: the loss, every weight, every
    moving average; and the replicas' copies must stay identical. A tiny spec (two block groups, 16 px)
    keeps tracing the mirrored step to seconds."""
    import dataclasses

    import keras
    import tensorflow as tf

    from nas.train.trainer import Trainer
    from nas.train.recipe import TrainConfig, resolve
    from search_space import get_spec
    from search_space.builder import build_model, reference_weight_map

    base = get_spec("efficientnet-edgetpu-S")
    spec = dataclasses.replace(base, name="two", blocks=base.blocks[:2], width=0.25, depth=0.25, resolution=16,
                               num_classes=4, include_background=False, dropout=0.0, drop_connect=0.0)
    recipe, _ = resolve(TrainConfig(preset="reference", batch_size=8, epochs=1, warmup_epochs=0.0,
                                    learning_rate=1.0), 8 * steps, replicas=2)
    assert recipe.steps_per_epoch == steps and recipe.batch_size == 8
    rng = np.random.default_rng(0)
    images = rng.normal(size=(steps, 8, 16, 16, 3)).astype(np.float32)
    labels = rng.integers(0, 4, size=(steps, 8))
    assert all(not np.array_equal(b[:4], b[4:]) for b in images)  # the halves differ
    runs = {}
    for name, strategy in [("one", tf.distribute.get_strategy()),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
        with strategy.scope():
            model = build_model(spec, seed=0)
            norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
            for layer in norms:
                layer.trainable = False
            trainer = Trainer(model, spec, recipe, strategy, reference_weight_map(model))
        assert norms and strategy.num_replicas_in_sync == (2 if name == "two" else 1)
        before = [v.numpy() for v in trainer.train_vars]
        stats = trainer.train_epoch(tf.data.Dataset.from_tensor_slices((images, labels)), epoch=0)
        assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, trainer.train_vars))  # it trained
        if name == "two":  # the replicas' copies stayed in step
            for var in [v.value for v in trainer.train_vars] + [trainer.ema.shadow]:
                copies = [c.numpy() for c in var.values]
                np.testing.assert_array_equal(copies[0], copies[1], err_msg=var.name)
        runs[name] = stats["loss"], [v.numpy() for v in trainer.all_vars] + trainer.ema.values()
    (loss_a, a), (loss_b, b) = runs["one"], runs["two"]
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-5)
    for x, y in zip(a, b):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)
    print("two replicas equal one device")


def test_two_replicas_equal_one_device():
    code = TWO_CPUS.split("; from nas.cli")[0] + "; from tests.test_train_distribute import two_replica_steps; two_replica_steps()"
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "two replicas equal one device" in proc.stdout, proc.stdout + proc.stderr[-6000:]


@pytest.mark.slow  # a whole CLI run mirrored: ~15 s at load 4 on 2 cores, minutes under heavy load (the step alone: above)
def test_two_replicas_train(tmp_path):
    """MirroredStrategy over two logical CPUs runs the recipe's step (per-replica batch norm)."""
    args = _setup(tmp_path, epochs=1, sync=False)
    out = _run(args + ["--run-dir", tmp_path / "two", "--strategy", "mirrored"], two_cpus=True)
    assert "MirroredStrategy, 2 replicas" in out and (tmp_path / "two" / "checkpoint").is_file(), out


def _port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two worker processes with collective ops on 2 shared cores
def test_two_workers_on_loopback(tmp_path):
    args = _setup(tmp_path, epochs=1, sync=False)
    cluster = {"worker": [f"localhost:{_port()}", f"localhost:{_port()}"]}
    procs = [_run(args + ["--run-dir", tmp_path / "mw"],
                  {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}, wait=False)
             for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
        assert "MultiWorkerMirroredStrategy, 2 replicas" in out, out
    assert (tmp_path / "mw" / "checkpoint").is_file() and (tmp_path / "mw" / "worker-1").is_dir()
