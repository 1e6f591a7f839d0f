"""`directory` data source: `PATH/<class>/*.jpg|png|...`, or `PATH/train/<class>/...` with
`PATH/val/<class>/...` (or `validation/`); classes are the sorted folder names.

A training class folder without an image is refused, naming it, rather than skipped: every folder is
a class and its position in the sorted names is its label, so skipping one would silently shift the
labels of every later class (and the labels map a user writes from the folder names), and keeping
it would give the model an output that can never be trained. A folder whose name starts with a dot
(`.ipynb_checkpoints`, `.git`) is not a class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.common.errors import ConfigError
from nas.data.base import DATA_SOURCES, Dataset, DataSource, holdout
from nas.data.images import is_image_file, square_resize


@DATA_SOURCES.register("directory")
class DirectorySource(DataSource):
    needs = "path"

    @classmethod
    def check(cls, config) -> None:
        root = Path(config.path)
        if not root.is_dir():
            raise ConfigError(f"data.path: directory '{root}' does not exist")
        train_root = _split_root(root, "train")
        if not _class_dirs(train_root):
            raise ConfigError(f"data.path: '{root}' has no class subfolders with images "
                              f"(expected PATH/<class>/*.jpg or PATH/train/<class>/*.jpg)")
        empty = [p for p in _folders(train_root) if not any(_images(p))]
        if empty:
            more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
            raise ConfigError(f"data.path: class folder '{empty[0]}' has no images{more}: a class needs "
                              "training images; add some or remove the folder")

    @classmethod
    def load(cls, config, resolution: int) -> Dataset:
        return _load_directory(config, resolution)

    @classmethod
    def image_size(cls, config, sample: int = 32) -> int | None:
        """The median shorter side of up to `sample` images spread over the classes (headers only)."""
        from PIL import Image

        root = _split_root(Path(config.path), "train")
        folders = [list(_images(folder)) for folder in _class_dirs(root)]
        per_class = max(1, sample // max(1, len(folders)))
        sides = []
        for files in folders:
            for path in files[:: max(1, len(files) // per_class)][:per_class]:
                try:
                    with Image.open(path) as image:
                        sides.append(min(image.size))
                except OSError:
                    continue  # loading names the unreadable file
        return int(np.median(sides)) if sides else None

def _split_root(root: Path, split: str) -> Path:
    names = ("train",) if split == "train" else ("val", "validation")
    for name in names:
        if (root / name).is_dir() and _class_dirs(root / name):
            return root / name
    return root


def _folders(root: Path) -> list[Path]:
    """The class folders of a split, with images or not (hidden folders are not classes)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def _class_dirs(root: Path) -> list[Path]:
    return [p for p in _folders(root) if any(_images(p))]


def _images(folder: Path):
    return (p for p in sorted(folder.iterdir()) if is_image_file(p))


def _read_folder(root: Path, classes: list[str], resolution: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    images, labels = [], []
    for label, name in enumerate(classes):
        for path in _images(root / name):
            try:
                with Image.open(path) as image:
                    images.append(square_resize(image, resolution))
            except (OSError, UnidentifiedImageError) as exc:
                raise ConfigError(f"data.path: cannot read image '{path}': {exc}") from None
            labels.append(label)
    return np.stack(images) if images else np.zeros((0, resolution, resolution, 3), np.uint8), np.array(labels, np.int64)


def _load_directory(config: DataConfig, resolution: int) -> Dataset:
    root = Path(config.path)
    train_root, val_root = _split_root(root, "train"), _split_root(root, "val")
    classes = [p.name for p in _class_dirs(train_root)]
    images, labels = _read_folder(train_root, classes, resolution)
    if val_root != root and train_root != root:
        missing = sorted({p.name for p in _class_dirs(val_root)} - set(classes))
        if missing:
            raise ConfigError(f"data.path: validation classes {', '.join(missing)} have no training folder")
        val_images, val_labels = _read_folder(val_root, classes, resolution)
    else:
        val = holdout(labels, config.val_fraction, config.seed)
        images, labels, val_images, val_labels = images[~val], labels[~val], images[val], labels[val]
    return Dataset(root.name, images, labels, val_images, val_labels, num_classes=len(classes),
                   preprocessing="square-pil", class_names=tuple(classes))


