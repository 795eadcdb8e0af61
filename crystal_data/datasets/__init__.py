"""Named downstream datasets and the pretraining corpus: a registry, their cache under
``data_home()``, and their splits stored as data (docs/datasets.md). ``crystal_data.load`` is the
entry point."""

from crystal_data.datasets.cache import DatasetNotAvailable
from crystal_data.datasets.registry import DATASETS, DatasetInfo, get_dataset
from crystal_data.datasets.split_files import CorruptSplit

__all__ = ["DATASETS", "CorruptSplit", "DatasetInfo", "DatasetNotAvailable", "get_dataset"]
