"""The run directory: one owner (nas.common.lock), atomic writes (nas.common.files), metrics CSV, TensorBoard, curve, summary.

    RUN_DIR/.lock          nas.common.lock: flock'ed by the training process (released on death)
    RUN_DIR/spec.yaml      the trained spec (the data's class count): `nas export/eval --ckpt RUN_DIR`
    RUN_DIR/checkpoint     TF's state file naming the latest model.ckpt-<step> (written last)
    RUN_DIR/train.yaml     the resolved recipe and data (a resume must match it)
    RUN_DIR/preprocessing.yaml  how the held-out images were prepared: eval and export prepare inputs so
    RUN_DIR/labels.txt     the class names, one per line by output index (background excluded)
    RUN_DIR/metrics.csv    one row per epoch;  RUN_DIR/tb/  TensorBoard;  curves.png;  summary.md
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from nas.common.files import write_bytes

COLUMNS = ("epoch", "step", "loss", "top1", "top5", "lr", "images_per_s", "seconds")


RECORD = "train.yaml"


def read_record(run_dir: Path) -> dict | None:
    """What the run in `run_dir` was started with (spec, data, train, init_from, freeze_until); None
    when it has none yet. A damaged record is a `UserError`: a resume cannot be checked against it."""
    import yaml

    from nas.common.errors import UserError

    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"training run directory '{run_dir}' is a file, not a directory; give the run's directory")
    path = run_dir / RECORD
    if not path.is_file():
        return None
    try:
        record = yaml.safe_load(path.read_text())
        if not (isinstance(record, dict) and all(isinstance(record.get(k), dict) for k in ("spec", "data", "train"))):
            raise ValueError("it lacks its spec:, data: or train: section")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc).splitlines()[0]
        raise UserError(f"'{path}' is damaged ({reason}); the run cannot be resumed safely, start another --run-dir") from None
    return record


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in COLUMNS})
    write_bytes(run_dir / "metrics.csv", out.getvalue().encode())


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with open(path) as f:
        return [{k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


class TensorBoard:
    def __init__(self, run_dir: Path, enabled: bool = True):
        import tensorflow as tf

        from tensorflow.core.framework import summary_pb2

        self.writer = tf.summary.create_file_writer(str(run_dir / "tb")) if enabled else None
        self.metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()

    def epoch(self, row: dict) -> None:
        import tensorflow as tf

        if self.writer is None:
            return
        with self.writer.as_default(step=row["step"]):
            for key in ("loss", "top1", "top5", "lr", "images_per_s"):
                # tf.summary.scalar lives in the tensorboard package (not installed with TF): write the
                # same event through the core op with the scalars plugin's metadata.
                tf.summary.write(key, tf.constant(row[key], tf.float32), metadata=self.metadata)
        self.writer.flush()


def plot_curves(run_dir: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = [r["epoch"] for r in rows]
    left.plot(epochs, [r["loss"] for r in rows], marker="o")
    left.set(xlabel="epoch", ylabel="training loss", title="loss")
    right.plot(epochs, [100 * r["top1"] for r in rows], marker="o", label="top-1")
    right.plot(epochs, [100 * r["top5"] for r in rows], marker=".", label="top-5")
    right.set(xlabel="epoch", ylabel="held-out accuracy (%)", title="held-out (averaged weights)")
    right.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    write_bytes(run_dir / "curves.png", buf.getvalue())


def write_summary(run_dir: Path, spec, recipe_line: str, data_line: str, rows: list[dict], seconds: float) -> None:
    last = rows[-1]
    best = max(rows, key=lambda r: r["top1"])
    text = (f"# nas train: {spec.name}\n\n"
            f"- model: {spec.resolution}x{spec.resolution}, {spec.num_classes} classes\n"
            f"- data: {data_line}\n- {recipe_line}\n"
            f"- held-out top-1 of the averaged weights: **{100 * last['top1']:.2f}%** "
            f"(top-5 {100 * last['top5']:.2f}%) after epoch {last['epoch']}; best {100 * best['top1']:.2f}% "
            f"at epoch {best['epoch']}\n- training time: {seconds:.0f} s this session\n\n"
            "| epoch | loss | top-1 | top-5 | lr | images/s |\n|---|---|---|---|---|---|\n"
            + "".join(f"| {r['epoch']} | {r['loss']:.4f} | {100 * r['top1']:.2f} | {100 * r['top5']:.2f} | "
                      f"{r['lr']:.4g} | {r['images_per_s']:.0f} |\n" for r in rows)
            + "\nFiles: `metrics.csv`, `curves.png`, `tb/` (TensorBoard), `spec.yaml` + `model.ckpt-*` "
              "(`nas export --ckpt` / `nas eval --ckpt` this directory).\n")
    write_bytes(run_dir / "summary.md", text.encode())
