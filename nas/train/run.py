"""The run directory: one owner (an OS lock), durable writes, metrics CSV, TensorBoard, curve, summary.

    RUN_DIR/lock           fcntl.flock'ed by the training process (the kernel releases it on death)
    RUN_DIR/spec.yaml      the trained spec (the data's class count): `nas export/eval --ckpt RUN_DIR`
    RUN_DIR/checkpoint     TF's state file naming the latest model.ckpt-<step> (written last)
    RUN_DIR/train.yaml     the resolved recipe and data (a resume must match it)
    RUN_DIR/metrics.csv    one row per epoch;  RUN_DIR/tb/  TensorBoard;  curves.png;  summary.md
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from pathlib import Path

from nas.common.errors import UserError

COLUMNS = ("epoch", "step", "loss", "top1", "top5", "lr", "images_per_s", "seconds")


def durable_write(path: Path, content: bytes) -> Path:
    """Temp name, fsync, rename, fsync the directory: after a crash the file is old or new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise UserError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunLock:
    """An exclusive flock on RUN_DIR/lock, holding our pid; a second process gets a UserError."""

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise UserError(f"run directory '{run_dir}' is in use by another nas train (pid {holder}); "
                            "wait for it or choose another --run-dir") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        os.close(self.fd)  # closing drops the flock


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in COLUMNS})
    durable_write(run_dir / "metrics.csv", out.getvalue().encode())


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
    durable_write(run_dir / "curves.png", buf.getvalue())


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
    durable_write(run_dir / "summary.md", text.encode())
