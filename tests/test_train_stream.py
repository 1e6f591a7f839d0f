"""`nas train` on streamed ImageNet (`data.stream`): the run, its batches as a function of (seed, epoch),
crops from the original image, and a resumed run ending as an uninterrupted one."""

import argparse
import contextlib
import dataclasses
import io

import numpy as np
import pytest
import tensorflow as tf
import yaml

from nas.data import DataConfig, load_dataset
from nas.deploy.preprocessing import crop_window
from nas.train import data as train_data
from nas.train.recipe import TrainConfig, resolve
from search_space import get_spec
from tests.imagenet_records import _example, _jpeg, write_imagenet_records
from tests.test_train_cli import tiny_spec

RES = 16


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_imagenet_records(tmp_path_factory.mktemp("records"), train_per_class=16, val_per_class=4,
                                  classes=4, image_size=48, shards=2, seed=3)


def _config(tmp_path, root, **train):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "imagenet", "path": str(root), "stream": True,
                                             "shuffle_buffer": 32},
                                    "train": {"batch_size": 16, "epochs": 2, **train}}))
    return path


def _metrics(run_dir):
    return [line.split(",")[:6] for line in (run_dir / "metrics.csv").read_text().splitlines()]


def test_nas_train_streams_imagenet_records(tmp_path, records):
    from nas.cli import main

    spec, run_dir = tiny_spec(tmp_path / "s.yaml"), tmp_path / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["train", "--spec", str(spec), "--config", str(_config(tmp_path, records.root)),
                     "--run-dir", str(run_dir)])
    assert code == 0, out.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("data: imagenet, 64 training (streamed") and "16 held-out" in lines[0], lines[0]
    assert "4 steps/epoch, 2 epochs" in lines[1]
    assert sum(line.startswith("epoch ") for line in lines) == 2
    for name in ("spec.yaml", "metrics.csv", "curves.png", "summary.md", "checkpoint", "train.yaml"):
        assert (run_dir / name).is_file(), name
    rows = _metrics(run_dir)
    assert rows[0][:3] == ["epoch", "step", "loss"] and [r[:2] for r in rows[1:]] == [["1", "4"], ["2", "8"]]
    assert all(np.isfinite(float(r[2])) for r in rows[1:])
    assert yaml.safe_load((run_dir / "train.yaml").read_text())["data"]["stream"] is True
    assert "streamed" in (run_dir / "summary.md").read_text()
    assert (run_dir / "model.ckpt-8.index").is_file()


def _pipeline(data, epoch, **train):
    spec = dataclasses.replace(get_spec("efficientnet-edgetpu-S"), resolution=RES)
    recipe, _ = resolve(TrainConfig(batch_size=16, epochs=2, **train), data.train_count)
    return [(x.numpy(), y.numpy()) for x, y in train_data.stream_dataset(data.stream, recipe, spec, epoch)], spec


def test_streamed_epoch_is_a_function_of_seed_and_epoch(records):
    data = load_dataset(DataConfig(source="imagenet", path=str(records.root), stream=True, shuffle_buffer=32), RES)
    first, spec = _pipeline(data, epoch=1, flip=True)
    again, _ = _pipeline(data, epoch=1, flip=True)
    other, _ = _pipeline(data, epoch=0, flip=True)
    reseeded, _ = _pipeline(data, epoch=1, flip=True, seed=7)
    assert len(first) == 4 and first[0][0].shape == (16, RES, RES, 3) and first[0][0].dtype == np.float32
    for (x, y), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(first[0][0], other[0][0]) and not np.array_equal(first[0][0], reseeded[0][0])
    # Every training record once per epoch (64 = 4 full batches), with its own label.
    assert sorted(np.concatenate([y for _, y in first])) == sorted(records.train_labels)
    pixels = first[0][0] * np.asarray(spec.std, np.float32) + np.asarray(spec.mean, np.float32)
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3  # the model's normalisation, undone


def _png(image):
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def wide_records(tmp_path_factory):
    """Images 96 x 32: red left and right thirds around a blue middle, so the centre square is all
    blue. Class 1 is stored as JPEG (cropped while decoding), class 2 as PNG (decoded, then cropped)."""
    root = tmp_path_factory.mktemp("wide")
    image = np.zeros((32, 96, 3), np.uint8)
    image[:, :, 2] = 220
    image[:, :32] = image[:, 64:] = (230, 20, 20)
    for split, count in (("train", 32), ("validation", 4)):
        with tf.io.TFRecordWriter(str(root / f"{split}-00000-of-00001")) as writer:
            for i in range(count):
                label = 1 + i % 2
                encoded = _jpeg(image) if label == 1 else _png(image)
                writer.write(_example(encoded, label, f"{split}_{i}", 96, 32))
    return load_dataset(DataConfig(source="imagenet", path=str(root), stream=True, shuffle_buffer=8), RES)


def _red(images):
    """Per image: does it hold any of the red edges?"""
    return ((images[..., 0] > 150) & (images[..., 2] < 100)).any(axis=(1, 2))


def _pixels(batches, spec):
    return np.concatenate([x for x, _ in batches]) * np.asarray(spec.std, np.float32) + np.asarray(spec.mean, np.float32)


def test_streamed_crops_come_from_the_original_image(wide_records):
    assert not _red(wide_records.train_images.astype(np.float32)).any()  # the centre square: blue only
    batches, spec = _pipeline(wide_records, epoch=0)
    red, labels = _red(_pixels(batches, spec)), np.concatenate([y for _, y in batches])
    assert len(red) == 32 and sorted(labels) == [1] * 16 + [2] * 16
    # A crop of the centre square would never reach the edges: JPEG and PNG records both do.
    assert red[labels == 1].any() and red[labels == 2].any(), (red, labels)
    # Area 1 at aspect 3/4..4/3 never fits a 3:1 image: the sampler fails, and the reference falls back
    # to its centre crop (a square of 16 / (16 + 32) of the short side, centred): blue only.
    fallback, spec = _pipeline(wide_records, epoch=0, crop_min_area=1.0)
    assert not _red(_pixels(fallback, spec)).any()
    for shape in ((32, 96, 3), (375, 1500, 3)):  # the window is the evaluation crop's (nas.deploy.preprocessing)
        begin, size = train_data._window(tf.constant(shape), tf.constant([0, 1], tf.int64), 1.0, fallback=224)
        top, left, side = crop_window(shape[0], shape[1], 224)
        assert list(begin.numpy()) == [top, left] and list(size.numpy()) == [side, side]


def _args(resume=False):
    return argparse.Namespace(resume=resume, init_from=None, freeze_until=None, strategy="auto")


class Interrupted(Exception):
    pass


def test_interrupted_streamed_run_resumes_to_the_same_metrics(tmp_path, records):
    """Stopped while reporting epoch 2 (after epoch 1's checkpoint, before epoch 2's): what a kill
    during epoch 2 leaves on disk. The resume must redo epoch 2 on the same streamed batches."""
    from nas.common.schema import read_section
    from nas.train.recipe import read_train_config
    from nas.train.session import run

    spec = get_spec(str(tiny_spec(tmp_path / "s.yaml")))
    config = yaml.safe_load(_config(tmp_path, records.root, preset="reference", flip=True).read_text())
    data_config = read_section(DataConfig, config["data"], "data")
    train_config = read_train_config(config["train"], {})
    lines = []
    run(_args(), spec, data_config, train_config, tmp_path / "whole", say=lambda *a, **k: lines.append(a[0]))

    def stop_at_epoch_2(line, **_):
        if line.startswith("epoch 2/"):
            raise Interrupted

    with pytest.raises(Interrupted):
        run(_args(), spec, data_config, train_config, tmp_path / "cut", say=stop_at_epoch_2)
    assert [r[0] for r in _metrics(tmp_path / "cut")] == ["epoch", "1"]
    assert (tmp_path / "cut" / "model.ckpt-4.index").is_file()
    resumed = []
    run(_args(resume=True), spec, data_config, train_config, tmp_path / "cut",
        say=lambda *a, **k: resumed.append(a[0]))
    assert any("resumed from" in line and "epoch 1 of 2" in line for line in resumed), resumed
    whole, cut = (np.array(_metrics(tmp_path / d)[1:], float) for d in ("whole", "cut"))
    assert whole.shape == cut.shape == (2, 6)
    np.testing.assert_allclose(cut, whole, rtol=1e-5, atol=1e-6)
    assert resumed[-1] == lines[-1]


def test_unreadable_record_met_while_training_is_one_line(tmp_path, capsys):
    """A record the in-memory sample (the first 256) does not cover is only read by an epoch: one line, exit 2."""
    from tests.cli_helpers import assert_one_line_error, run_cli

    root = tmp_path / "records"
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, count in (("train", 300), ("validation", 8)):
        with tf.io.TFRecordWriter(str(root / f"{split}-00000-of-00001")) as writer:
            for i in range(count):
                image = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
                encoded = b"not a jpeg" if (split, i) == ("train", count - 1) else _jpeg(image)
                writer.write(_example(encoded, 1 + i % 2, f"{split}_{i}.JPEG", 16, 12))
    config = _config(tmp_path, root, batch_size=20, epochs=1)
    code, _, err = run_cli(capsys, "train", "--spec", tiny_spec(tmp_path / "s.yaml"), "--config", config,
                           "--run-dir", tmp_path / "run")
    assert_one_line_error(code, err, "data.path: cannot read the training data: Unknown image file format")
    assert not (tmp_path / "run" / "checkpoint").exists()


@pytest.mark.slow  # three training processes (two at once) on 2 shared cores: minutes
def test_sigkill_then_resume_streamed_matches_uninterrupted(tmp_path, records):
    """The in-memory path's SIGKILL test (tests/test_train_resume.py) on streamed records."""
    from tests.test_train_resume import kill_then_resume_matches_whole

    spec = tiny_spec(tmp_path / "s.yaml")
    args = ("train", "--spec", spec, "--config", _config(tmp_path, records.root, epochs=3))
    _, out = kill_then_resume_matches_whole(args, tmp_path, 3)
    assert "resumed from" in out, out
