"""Datasets and image transforms a recipe names (`data:`); importing this fills the registries."""

# each dataset source registers itself in `engine.train.registry.DATASETS` on import
from engine.train.data import (  # noqa: F401 - imported for their registration
    cifar10,
    digits,
    image_folder,
    imdb,
    isbi,
    mnist,
    multi30k,
    sr,
    unpaired,
)
from engine.train.data.datasets import (
    DatasetInfo,
    build_dataset,
    data_root,
    dataset_info,
    dataset_names,
)
from engine.train.data.transforms import build_transform, check_transforms, transform_names, transform_usage

__all__ = [
    "DatasetInfo",
    "build_dataset",
    "build_transform",
    "check_transforms",
    "data_root",
    "dataset_info",
    "dataset_names",
    "transform_names",
    "transform_usage",
]
