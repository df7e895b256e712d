"""The torch `Dataset` classes the dataset sources return: in-memory arrays and image files."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset


class ArrayDataset(Dataset):
    """Items of in-memory image and label tensors, at the given positions.

    `images` is uint8 (read as /255) or float in [0, 1], shape [N, C, H, W]; it is shared (not
    copied) between the splits of one dataset."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        indices: np.ndarray | None,
        transform: Callable | None,
        classes: list[str],
    ):
        self.images = images
        self.labels = labels
        self.indices = torch.arange(len(labels)) if indices is None else torch.as_tensor(indices)
        self.transform = transform
        self.classes = classes

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> torch.Tensor:
        """The labels of this split, in item order."""
        return self.labels[self.indices]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.indices[i])
        image = self.images[j]
        image = image.float().div_(255) if image.dtype == torch.uint8 else image.clone()
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[j])

    def __repr__(self) -> str:
        shape = list(self.images.shape[1:])
        return f"{type(self).__name__}({len(self)} items, image {shape}, {len(self.classes)} classes)"


class FileImageDataset(Dataset):
    """Items of image files, decoded on access (PIL) to float tensors in [0, 1]."""

    def __init__(self, samples: list[tuple[str, int]], channels: int, transform, classes: list[str]):
        self.samples = samples
        self.mode = "L" if channels == 1 else "RGB"
        self.transform = transform
        self.classes = classes

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.long)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        from torchvision.transforms.v2.functional import pil_to_tensor

        path, label = self.samples[i]
        with Image.open(path) as img:
            image = pil_to_tensor(img.convert(self.mode)).float().div_(255)
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} files, {len(self.classes)} classes)"
