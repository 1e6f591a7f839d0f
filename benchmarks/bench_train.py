"""`nas train` figures: the custom loop's throughput against `model.fit` (same Keras model, the same
TF1 RMSProp update, same batch, one step per call on both sides: fit's default steps_per_execution=1)
on this CPU, the same loop without the moving average and the L2 term (what those cost), memory (RSS)
per epoch, and on the offline digits with the small-data preset the held-out top-1 of the float model
and of its full-int8 export.

Writes benchmarks/results/bench_train.md. Run: .venv/bin/python benchmarks/bench_train.py
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROW_LOOP = "nas train loop (TF1 RMSProp + L2 + EMA)"
ROW_BARE = "the same loop without EMA and L2"
ROW_FIT = "model.fit (same TF1 RMSProp update, no EMA, no L2)"
REPEATS, STEPS, BATCH = 8, 30, 32


def _spec(tmp: Path):
    import dataclasses

    from search_space import get_spec

    spec = dataclasses.replace(get_spec("efficientnet-edgetpu-S"), name="bench", width=0.25, depth=0.5,
                               resolution=32, num_classes=10, include_background=False)
    (tmp / "bench.yaml").write_text(spec.to_yaml())
    return spec


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def throughput(spec) -> tuple[dict, dict, list[float]]:
    """{row: best-of-REPEATS images/s}, {row: least CPU ms per step} and RSS after each recipe-loop epoch.

    Rows: the recipe's step, the same step without moving average and L2, model.fit. CPU time is the
    process's (all threads) per step: less sensitive than wall time to other processes on a shared machine."""
    import dataclasses

    import keras
    import numpy as np
    import tensorflow as tf

    from nas.data import DataConfig, load_dataset
    from nas.train.trainer import Trainer
    from nas.train.recipe import TrainConfig, resolve
    from search_space.builder import build_model, reference_weight_map

    data = load_dataset(DataConfig(), spec.resolution)
    recipe, _ = resolve(TrainConfig(preset="reference", batch_size=BATCH, epochs=1), len(data.train_labels))
    strategy = tf.distribute.get_strategy()
    model = build_model(spec, seed=0)
    trainer = Trainer(model, spec, recipe, strategy, reference_weight_map(model))
    bare_recipe = dataclasses.replace(recipe, config=dataclasses.replace(recipe.config, weight_decay=0.0))
    bare_model = build_model(spec, seed=0)
    bare = Trainer(bare_model, spec, bare_recipe, strategy, reference_weight_map(bare_model))
    bare._step_fn = bare._make_step(average=False)
    images = data.train_images[:STEPS * BATCH]
    labels = data.train_labels[:STEPS * BATCH]
    x = (images.astype(np.float32) - 127.0) / 128.0

    class TF1RMSProp(keras.optimizers.Optimizer):
        """The same ResourceApplyRMSProp update inside Keras's fit (ms at ones), no EMA."""

        def build(self, variables):
            super().build(variables)
            self.ms = [self.add_variable_from_reference(v, "ms", initializer="ones") for v in variables]
            self.mom = [self.add_variable_from_reference(v, "mom") for v in variables]

        def update_step(self, grad, variable, learning_rate):
            i = self._get_variable_index(variable)
            # Keras hands update_step the backend tf.Variable; its own slots are Keras variables.
            handle = lambda v: v.handle if hasattr(v, "handle") else v.value.handle  # noqa: E731
            tf.raw_ops.ResourceApplyRMSProp(var=handle(variable), ms=handle(self.ms[i]), mom=handle(self.mom[i]),
                                            lr=tf.cast(learning_rate, grad.dtype), rho=0.9, momentum=0.9,
                                            epsilon=1e-3, grad=grad)

    fit_model = build_model(spec, seed=0)
    fit_model.compile(TF1RMSProp(learning_rate=0.01),
                      keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    onehot = np.eye(10, dtype=np.float32)[labels]
    batches = [(tf.constant(x[b * BATCH:(b + 1) * BATCH]), tf.constant(labels[b * BATCH:(b + 1) * BATCH]))
               for b in range(STEPS)]

    def loop_epoch(t):
        for images_b, labels_b in batches:
            t._step_fn(images_b, labels_b, tf.constant(0.01), tf.constant(t.step, tf.int64))
            t.step += 1
        float(t._step_fn(*batches[0], tf.constant(0.0), tf.constant(t.step, tf.int64)))  # sync
        t.step += 1
        return STEPS + 1

    def fit_epoch():
        fit_model.fit(x, onehot, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        return STEPS

    runs = {ROW_LOOP: lambda: loop_epoch(trainer), ROW_BARE: lambda: loop_epoch(bare), ROW_FIT: fit_epoch}
    speed, cpu, rss = {k: [] for k in runs}, {k: [] for k in runs}, []
    # Epochs alternate (loop, bare loop, fit, ... in a rotating order) so that load from other processes
    # on a shared machine falls on all alike; the first of each traces and is dropped.
    for repeat in range(REPEATS + 1):
        order = list(runs)[repeat % 3:] + list(runs)[:repeat % 3]
        for name in order:
            wall, proc = time.perf_counter(), time.process_time()
            steps = runs[name]()
            wall, proc = time.perf_counter() - wall, time.process_time() - proc
            if repeat:
                speed[name].append(steps * BATCH / wall)
                cpu[name].append(1000 * proc / steps)
            if name == ROW_LOOP:
                rss.append(_rss_mb())
    return {k: max(v) for k, v in speed.items()}, {k: min(v) for k, v in cpu.items()}, rss[1:]


def accuracy(tmp: Path) -> tuple[float, float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    nas = [sys.executable, "-m", "nas"]
    run = lambda *a: subprocess.run([*nas, *map(str, a)], env=env, capture_output=True, text=True, check=True).stdout  # noqa: E731
    out = run("train", "--spec", tmp / "bench.yaml", "--preset", "small", "--epochs", "10", "--run-dir", tmp / "run")
    choice = next(line for line in out.splitlines() if line.startswith("recipe:"))
    run("export", "--ckpt", tmp / "run", "--output-tflite", tmp / "int8.tflite")
    top1 = lambda text: float(re.findall(r"Final: top1_acc = ([\d.]+)%", text)[-1])  # noqa: E731
    f = top1(run("eval", "--ckpt", tmp / "run", "--offline"))
    q = top1(run("eval", "--tflite", tmp / "int8.tflite", "--spec", tmp / "bench.yaml", "--offline"))
    return f, q, choice


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        spec = _spec(tmp)
        speed, cpu, rss = throughput(spec)
        f, q, choice = accuracy(tmp) if "--throughput-only" not in sys.argv else (None, None, None)
    rows = [[k, f"{speed[k]:.0f}", f"{speed[k] / speed[ROW_FIT]:.2f}x", f"{cpu[k]:.1f}",
             f"{cpu[ROW_FIT] / cpu[k]:.2f}x"] for k in speed]
    body = "\n".join([
        f"Model: EfficientNet-EdgeTPU-S shrunk (width 0.25, depth 0.5, 32 px, 10 classes); batch {BATCH}, "
        f"{STEPS} steps per epoch, one step per call on both sides (fit's steps_per_execution=1); the loop is "
        "the Trainer's step function (what `nas train`'s epochs call) over the same pre-made batches fit gets; "
        f"best of {REPEATS} epochs after a warm-up one, the three kinds of epoch alternating in a rotating "
        "order (the machine is shared: load falls on all alike). CPU ms/step: the process's CPU time (all "
        "threads) per step, least over the epochs; ratios are against fit (goal: the recipe's loop >= 1.0x).", "",
        *markdown_table(["", "images/s", "vs fit", "CPU ms/step", "vs fit (CPU)"], rows),
        "", "Memory: RSS after each loop epoch (MB): " + ", ".join(f"{r:.0f}" for r in rss)
        + f" (growth {rss[-1] - rss[0]:+.0f} MB); the process also holds the other two kinds' models.",
    ])
    if f is not None:
        body += "\n".join(["", "",
        f"Offline digits, `nas train --preset small --epochs 10` ({choice}):", "",
        *markdown_table(["model", "held-out top-1 (359 images)"],
                        [["float (averaged weights)", f"{f:.2f}%"], ["full-int8 TFLite", f"{q:.2f}%"],
                         ["int8 - float (goal within 1 point)", f"{q - f:+.2f}"]]),
        ])
    print(body)
    if f is not None:  # a throughput-only run is for trying changes: the results file needs every part
        write_results("bench_train", "nas train", body)


if __name__ == "__main__":
    main()
