"""Which tf.distribute strategy a run uses.

- `auto`: MultiWorkerMirroredStrategy when TF_CONFIG names several workers, MirroredStrategy over
  the GPUs when there are several, else the default (one device) strategy.
- `mirrored`: MirroredStrategy over every GPU, or every logical CPU device when there is no GPU
  (how the tests get two replicas on one CPU).
- `multiworker`: MultiWorkerMirroredStrategy from TF_CONFIG (one process per host; the chief, task 0,
  writes the run directory, the others write under RUN_DIR/worker-<i>).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def tf_config() -> dict:
    try:
        return json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError:
        from nas.common.errors import UserError

        raise UserError("TF_CONFIG is not valid JSON") from None


def make_strategy(kind: str = "auto"):
    config = tf_config()
    workers = len(config.get("cluster", {}).get("worker", []))
    if kind == "auto":
        kind = "multiworker" if workers > 1 else (
            "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default")
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def worker_index() -> int:
    """This process's task index (0 = chief) under TF_CONFIG, else 0."""
    task = tf_config().get("task", {})
    return int(task.get("index", 0)) if task.get("type", "worker") in ("worker", "chief") else 0


def describe(strategy) -> str:
    name = type(strategy).__name__
    # TF 2.21's MultiWorkerMirroredStrategy() is an instance of its implementation class.
    name = {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}.get(name, name)
    if name == "_DefaultDistributionStrategy":
        return "one device"
    return f"{name}, {strategy.num_replicas_in_sync} replicas"
