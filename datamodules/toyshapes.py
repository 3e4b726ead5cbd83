"""ToyShapes: the thesis's toy set, made on the fly from a seed.

Every 32x32 image is black and holds a rectangle, a circle and a triangle. Each shape
type has a palette of three saturated colors of its own. The nine colors sit 7 L* units
apart (L* = 35, 42, ..., 91), so a shape's color can be told from its gray image even
where shapes overlap: a model that truly learns reaches near-perfect bins.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.base import ImageDataModule, check_loader_options
from lit_colorize.augment import RandomHorizontalFlip
from lit_colorize.errors import ConfigError

#: shape -> three RGB colors: maximal in-gamut chroma at L* 35/56/91, 42/63/84 and 49/70/77.
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "rectangle": ((169, 0, 31), (0, 144, 197), (245, 234, 0)),
    "circle": ((32, 74, 255), (0, 177, 45), (1, 232, 238)),
    "triangle": ((222, 2, 142), (255, 141, 47), (7, 215, 171)),
}


def _rectangle(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    h, w = rng.integers(size // 5, size * 3 // 8, endpoint=True, size=2)
    top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    return (yy >= top) & (yy < top + h) & (xx >= left) & (xx < left + w)


def _circle(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    radius = rng.uniform(size / 10, size / 5.5)
    cy, cx = rng.uniform(radius, size - radius, size=2)
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= radius**2


def _triangle(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """A triangle with a horizontal base: apex above the base's middle, pointing up or down."""
    base, height = rng.uniform(size / 4, size * 7 / 16, size=2)
    cx = rng.uniform(base / 2, size - base / 2)
    top = rng.uniform(0, size - height)
    ty = (yy + 0.5 - top) / height  # 0 at the top edge, 1 at the bottom edge
    if rng.random() < 0.5:  # apex up
        half_width = ty * base / 2
    else:
        half_width = (1 - ty) * base / 2
    return (ty >= 0) & (ty <= 1) & (np.abs(xx + 0.5 - cx) <= half_width)


_DRAW = {"rectangle": _rectangle, "circle": _circle, "triangle": _triangle}


def make_toy_shapes(
    num_images: int, size: int = 32, seed: int | tuple[int, ...] = 0, max_tries: int = 100
) -> np.ndarray:
    """Deterministic uint8 images, shape (N, 3, size, size): black, one shape of each kind.

    Shapes are placed so they do not overlap (up to ``max_tries`` draws each), so all three
    are whole and visible, as in the thesis's toy images.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.zeros((num_images, size, size, 3), dtype=np.uint8)
    for image in images:
        occupied = np.zeros((size, size), dtype=bool)
        for shape in rng.permutation(list(_DRAW)):
            for _ in range(max_tries):
                mask = _DRAW[shape](rng, yy, xx, size)
                if mask.any() and not (mask & occupied).any():
                    break
            occupied |= mask
            image[mask] = PALETTES[shape][rng.integers(3)]
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


class ImageTensorDataset(Dataset):
    """uint8 images held in memory."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


class ToyShapes(ImageDataModule):
    """The thesis's toy set: 2,664 training and 324 validation images by default.

    Batches are uint8 RGB tensors (B, 3, H, W); the module converts them on the device, after
    the training augmentation: a left-right flip with probability ``flip_p``.
    """

    def __init__(
        self,
        num_train: int = 2664,
        num_val: int = 324,
        image_size: int = 32,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        flip_p: float = 0.5,
    ) -> None:
        super().__init__()
        check_loader_options(batch_size, num_workers)
        if num_train < 1 or num_val < 1:
            raise ConfigError(f"num_train and num_val must be >= 1, got {num_train} and {num_val}")
        self.save_hyperparameters()
        self.train_augmentation = RandomHorizontalFlip(flip_p) if flip_p else None
        self.train_images: Tensor | None = None
        self.val_images: Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_images is None:
            hp = self.hparams
            # Separate seed streams keep the validation set fixed when num_train changes.
            self.train_images = torch.from_numpy(make_toy_shapes(hp.num_train, hp.image_size, seed=(hp.seed, 0)))
            self.val_images = torch.from_numpy(make_toy_shapes(hp.num_val, hp.image_size, seed=(hp.seed, 1)))
            self.train_set = ImageTensorDataset(self.train_images)
            self.val_set = ImageTensorDataset(self.val_images)
