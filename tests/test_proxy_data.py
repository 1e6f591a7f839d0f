"""Proxy data sources: image directories and ImageNet TFRecords in the reference layout, written here."""

import io

import numpy as np
import pytest
from PIL import Image

from nas.config import config_from_dict
from nas.data_sources import DataConfig, check_data, load_dataset, square_resize
from nas.proxy import ProxyConfig, ProxyTask
from nas.schema import ConfigError
from tests.search_helpers import TINY

COLOURS = {"apple": (200, 30, 30), "leaf": (30, 200, 30), "sky": (30, 30, 200)}


def _png(path, colour, size=(24, 18)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _jpeg(colour, size=(20, 28)):
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_square_resize_takes_the_centre_square():
    image = Image.new("RGB", (60, 20), (255, 0, 0))
    image.paste((0, 255, 0), (20, 0, 40, 20))  # the middle third is green
    out = square_resize(image, 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out[..., 1] > 200).all() and (out[..., 0] < 50).all()


def test_directory_of_class_folders_is_split_stratified(tmp_path):
    for name, colour in COLOURS.items():
        for i in range(8):
            _png(tmp_path / name / f"{i}.png", colour)
    (tmp_path / "notes.txt").write_text("not a class")
    data = load_dataset(DataConfig(source="directory", path=str(tmp_path), val_fraction=0.25), 12)
    assert data.num_classes == 3 and not data.include_background
    assert data.train_images.shape == (18, 12, 12, 3) and data.val_images.shape == (6, 12, 12, 3)
    assert sorted(np.bincount(data.val_labels)) == [2, 2, 2]
    for images, labels in ((data.train_images, data.train_labels), (data.val_images, data.val_labels)):
        for image, label in zip(images, labels):  # classes are the sorted folder names
            assert tuple(map(int, image[6, 6])) == pytest.approx(COLOURS[sorted(COLOURS)[label]], abs=2)


def test_directory_with_train_and_val_folders_uses_them(tmp_path):
    for split, count in (("train", 5), ("val", 2)):
        for name, colour in COLOURS.items():
            for i in range(count):
                _png(tmp_path / split / name / f"{i}.jpg", colour)
    data = load_dataset(DataConfig(source="directory", path=str(tmp_path)), 8)
    assert (len(data.train_labels), len(data.val_labels), data.num_classes) == (15, 6, 3)


def test_unreadable_image_or_empty_directory_is_named(tmp_path):
    _png(tmp_path / "a" / "0.png", (1, 2, 3))
    (tmp_path / "a" / "1.png").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match=r"data\.path: cannot read image '.*1\.png'"):
        load_dataset(DataConfig(source="directory", path=str(tmp_path)), 8)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="data.path: '.*empty' has no class subfolders"):
        check_data(DataConfig(source="directory", path=str(empty)))


def _write_tfrecords(path, examples):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for encoded, label in examples:
            feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                       "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                       "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    """The reference layout: train-*-of-* and validation-*-of-* shards, labels 1..1000 (0 = background)."""
    root = tmp_path_factory.mktemp("imagenet")
    colours = list(COLOURS.values())
    for shard in range(2):
        _write_tfrecords(root / f"train-{shard:05d}-of-00002",
                         [(_jpeg(colours[i % 3]), 1 + i % 3) for i in range(shard, 40, 2)])
    _write_tfrecords(root / "validation-00000-of-00001", [(_jpeg(colours[i % 3]), 1 + i % 3) for i in range(12)])
    return root


def test_imagenet_tfrecords_keep_the_reference_labels(imagenet_dir):
    data = load_dataset(DataConfig(source="imagenet", path=str(imagenet_dir)), 16)
    assert data.num_classes == 1001 and data.include_background  # 1000 classes + background 0
    assert data.train_images.shape == (40, 16, 16, 3) and len(data.val_labels) == 12
    assert set(data.train_labels) == {1, 2, 3}
    for image, label in zip(data.val_images, data.val_labels):  # the label stays with its image
        assert tuple(map(int, image[8, 8])) == pytest.approx(list(COLOURS.values())[label - 1], abs=8)
    capped = load_dataset(DataConfig(source="imagenet", path=str(imagenet_dir), max_train=7, max_val=5), 16)
    assert (len(capped.train_labels), len(capped.val_labels)) == (7, 5)


def test_proxy_trains_a_1001_class_candidate_on_tfrecords(imagenet_dir):
    data = load_dataset(DataConfig(source="imagenet", path=str(imagenet_dir)), 16)
    space = config_from_dict(TINY, "tiny").space
    task = ProxyTask(ProxyConfig(resolution=16, width=0.5, epochs=2, batch_size=8), data)
    result = task.evaluate(space.to_spec([0] * len(space.cardinalities)), seed=0)
    assert 0.0 <= result.accuracy <= 1.0 and np.isfinite(result.train_loss)


def test_imagenet_layout_problems_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no 'train-\\*' TFRecord files"):
        check_data(DataConfig(source="imagenet", path=str(tmp_path)))
    _write_tfrecords(tmp_path / "train-00000-of-00001", [(_jpeg((1, 2, 3)), 1001)])
    with pytest.raises(ConfigError, match="label 1001 is outside 0..1000"):
        load_dataset(DataConfig(source="imagenet", path=str(tmp_path)), 8)
