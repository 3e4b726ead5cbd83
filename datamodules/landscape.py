"""Landscape: folders of real photos, decoded once into a uint8 cache, augmented on the device.

Each source folder holds class subfolders (``forest/``, ``sea/``...) or images directly
(an "uncategorized" class). A folder with ``train/`` and ``val/`` subfolders gives the split;
otherwise a seeded split takes ``val_fraction`` of its photos for validation. Folders in
``train_roots`` are for training only (e.g. BSDS500's train and val, while its test stays out
for evaluation), so the held-out split is that of ``roots`` alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from datamodules.base import ImageDataModule, check_loader_options

from lit_colorize.atomic import atomic_path
from lit_colorize.augment import RandomCropRotateFlip
from lit_colorize.color import near_gray_images, rgb_to_lab
from lit_colorize.errors import ConfigError, DataError
from lit_colorize.files import IMAGE_SUFFIXES, image_files
from lit_colorize.imageio import ImageReadError, load_rgb

log = logging.getLogger(__name__)

UNCATEGORIZED = "uncategorized"


def resize_and_crop(image: Tensor, size: int) -> Tensor:
    """uint8 (3, H, W) -> uint8 (3, size, size): shorter side to ``size`` (antialiased), center crop."""
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    resized = F.interpolate(image[None].float(), size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[0, :, top : top + size, left : left + size].round().clamp(0, 255).to(torch.uint8)


def find_images(folder: Path) -> list[tuple[Path, str]]:
    """(path, class name) for every image below ``folder``: class = first subfolder, else uncategorized."""
    found = []
    for path in image_files(folder):
        relative = path.relative_to(folder).parts
        found.append((path, relative[0] if len(relative) > 1 else UNCATEGORIZED))
    return found


class ImageCache:
    """Decoded, resized uint8 images in a memory-mapped ``.npy`` under ``cache_dir``.

    The file name is a hash of the image paths, sizes and modification times and of
    ``image_size``, so any change to the files or the size builds a new cache; epochs after
    the first never decode a JPEG again. Unreadable files are reported once and skipped.
    """

    def __init__(self, cache_dir: str | Path, image_size: int) -> None:
        self.cache_dir = Path(cache_dir).expanduser()
        self.image_size = image_size

    def key(self, paths: Sequence[Path]) -> str:
        digest = hashlib.sha1(str(self.image_size).encode())
        for path in paths:
            stat = path.stat()
            digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:20]

    def load(self, paths: Sequence[Path]) -> tuple[np.ndarray, list[int]]:
        """(images (N_good, 3, S, S) uint8 memmap, indices into ``paths`` of the good files)."""
        key = self.key(paths)
        array_path, index_path = self.cache_dir / f"{key}.npy", self.cache_dir / f"{key}.json"
        if array_path.is_file() and index_path.is_file():
            good = json.loads(index_path.read_text())["good"]
            return np.load(array_path, mmap_mode="r"), good
        return self._build(paths, array_path, index_path)

    def _build(self, paths: Sequence[Path], array_path: Path, index_path: Path) -> tuple[np.ndarray, list[int]]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        images, good, bad = [], [], []
        for index, path in enumerate(paths):
            try:
                images.append(resize_and_crop(load_rgb(path), self.image_size).numpy())
                good.append(index)
            except ImageReadError as error:
                log.warning("skipping unreadable image: %s", error)
                bad.append(str(path))
        if bad:
            log.warning("%d of %d files could not be read and were skipped", len(bad), len(paths))
        size = self.image_size
        with atomic_path(array_path) as temporary:  # a reader never sees a half-written cache
            array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(len(images), 3, size, size))
            for i, image in enumerate(images):
                array[i] = image
            array.flush()
            del array
        index_path.write_text(json.dumps({"good": good, "bad": bad, "image_size": size}))
        return np.load(array_path, mmap_mode="r"), good


def is_colorful(images: Tensor | np.ndarray, threshold: float, batch_size: int = 256) -> Tensor:
    """True for each uint8 image with at least one pixel of chroma |ab| above ``threshold``.

    Reads ``batch_size`` images at a time, so a memory-mapped cache is never loaded whole.
    """
    keep = []
    for start in range(0, len(images), batch_size):
        ab = rgb_to_lab(torch.as_tensor(np.asarray(images[start : start + batch_size])))[:, 1:]
        keep.append(~near_gray_images(ab, threshold))
    return torch.cat(keep) if keep else torch.zeros(0, dtype=torch.bool)


class _Rows:
    """Lazy ``array[indices]``: slicing reads only the rows asked for (memmap-friendly)."""

    def __init__(self, array: np.ndarray, indices: np.ndarray) -> None:
        self.array, self.indices = array, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.array[self.indices[rows]]


class CachedImages(Dataset):
    def __init__(self, images: np.ndarray, labels: Tensor, indices: Sequence[int]) -> None:
        self.images, self.labels, self.indices = images, labels, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[Tensor, Tensor]:
        index = self.indices[item]
        return torch.from_numpy(np.array(self.images[index])), self.labels[index]


def landscape_augmentation(image_size: int) -> nn.Module:
    """The thesis's augmentation, online and per batch on the device: rotation within +-30
    degrees, crop of 70-100% of the area (back to ``image_size``), horizontal and vertical
    flips, as one warp per image (see :mod:`lit_colorize.augment`)."""
    return RandomCropRotateFlip(image_size, scale=(0.7, 1.0), ratio=(0.9, 1.1), degrees=30.0, hflip=0.5, vflip=0.5)


class Landscape(ImageDataModule):
    """Photos from one or more folders, ``image_size`` square (default 128), as uint8 batches.

    Training augmentation, on the device and per batch, as in the thesis but online: rotation
    within +-30 degrees, crop of up to 30%, horizontal and vertical flips
    (:func:`landscape_augmentation`). One warp applies to the whole RGB image, so L and ab stay
    aligned.
    ``drop_gray`` leaves near-gray training photos (fog, snow, black and white) out.
    """

    def __init__(
        self,
        roots: Sequence[str] = ("../shared/data/landscape",),
        train_roots: Sequence[str] = (),
        image_size: int = 128,
        val_fraction: float = 0.1,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        cache_dir: str = ".cache/lit-colorize",
        drop_gray: bool = True,
        gray_threshold: float = 6.0,
        max_images: int | None = None,
    ) -> None:
        super().__init__()
        check_loader_options(batch_size, num_workers)
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        self.save_hyperparameters()
        self.train_set: CachedImages | None = None
        self.val_set: CachedImages | None = None
        self.class_names: list[str] = []
        self.paths: list[Path] = []  # of the cached images, in cache order
        self.train_augmentation = landscape_augmentation(image_size)

    def val_classes(self) -> Tensor | None:
        """The folder (class) of each validation photo."""
        return None if self.val_set is None else self.val_set.labels[self.val_set.indices]

    def val_paths(self) -> list[Path]:
        """The files of the validation (held-out) split, in order (after ``setup``)."""
        if self.val_set is None:
            raise RuntimeError("Landscape.setup() has not run yet")
        return [self.paths[i] for i in self.val_set.indices]

    def _listing(self) -> tuple[list[Path], list[str], list[bool | None]]:
        """Every image with its class and whether it is a validation image: True/False where a
        folder says so (``train/`` and ``val/``, or a training-only root), None where the seeded
        split decides."""
        paths, classes, explicit_val = [], [], []
        roots = [(root, False) for root in self.hparams.roots] + [(root, True) for root in self.hparams.train_roots]
        for root, train_only in roots:
            folder = Path(root).expanduser()
            if not folder.is_dir():
                key = "train_roots" if train_only else "roots"
                raise FileNotFoundError(f"photo folder {folder} does not exist; set data.init_args.{key} to your folders")
            split_dirs = [(folder / "train", False), (folder / "val", True)]
            if train_only:
                parts = [(d, False) for d, _ in split_dirs] if all(d.is_dir() for d, _ in split_dirs) else [(folder, False)]
            else:
                parts = split_dirs if all(d.is_dir() for d, _ in split_dirs) else [(folder, None)]
            for directory, is_val in parts:
                for path, name in find_images(directory):
                    paths.append(path)
                    classes.append(name)
                    explicit_val.append(is_val)
        if not paths:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {list(self.hparams.roots)}")
        if self.hparams.max_images is not None:
            order = np.random.default_rng(self.hparams.seed).permutation(len(paths))[: self.hparams.max_images]
            order.sort()
            paths, classes, explicit_val = ([seq[i] for i in order] for seq in (paths, classes, explicit_val))
        return paths, classes, explicit_val

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        paths, classes, explicit_val = self._listing()
        images, good = ImageCache(hp.cache_dir, hp.image_size).load(paths)
        if not good:
            raise DataError(f"none of the {len(paths)} files in {list(hp.roots)} could be read as an image")
        self.class_names = sorted({classes[i] for i in good})
        labels = torch.tensor([self.class_names.index(classes[i]) for i in good])
        is_val = np.array([explicit_val[i] is True for i in good])
        undecided = np.array([i for i, index in enumerate(good) if explicit_val[index] is None], dtype=np.int64)
        if len(undecided):  # the seeded split, over the photos no folder assigns
            order = np.random.default_rng(hp.seed).permutation(len(undecided))
            is_val[undecided[order[: max(1, round(hp.val_fraction * len(undecided)))]]] = True
        if not is_val.any():
            raise DataError(f"no validation photos in {list(hp.roots)}: give roots a folder to split or one with val/")
        train_indices = np.nonzero(~is_val)[0]
        if hp.drop_gray:
            colorful = is_colorful(_Rows(images, train_indices), hp.gray_threshold).numpy()
            dropped = int((~colorful).sum())
            train_indices = train_indices[colorful]
            log.info("drop_gray: left %d near-gray training photos out", dropped)
        if len(train_indices) == 0:
            raise DataError(f"no training photos left in {list(hp.roots)} (after drop_gray={hp.drop_gray})")
        log.info(
            "Landscape: %d train / %d val photos of %d classes; %d unreadable files skipped",
            len(train_indices), int(is_val.sum()), len(self.class_names), len(paths) - len(good),
        )  # fmt: skip
        self.paths = [paths[i] for i in good]
        self.train_set = CachedImages(images, labels, train_indices.tolist())
        self.val_set = CachedImages(images, labels, np.nonzero(is_val)[0].tolist())
