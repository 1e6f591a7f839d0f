"""Proxy data: the data-source API and one module per source, each registered in `DATA_SOURCES`.

    from nas.data import DataConfig, load_dataset
    data = load_dataset(DataConfig(source="directory", path="images/"), resolution=64)

A new source: `nas/data/<name>.py` with a `DataSource` subclass decorated
`@DATA_SOURCES.register("<name>")`, imported below (the order here is the order `known:` lists).
"""

from nas.data.base import DATA_SOURCES, DataConfig, Dataset, DataSource, check_data, load_dataset
from nas.data.images import IMAGE_SUFFIXES, normalize
from nas.data import offline, mnist, directory, tfds, imagenet  # noqa: E402,F401  (each registers its source)

__all__ = ["DATA_SOURCES", "IMAGE_SUFFIXES", "DataConfig", "DataSource", "Dataset", "check_data", "load_dataset",
           "normalize"]
