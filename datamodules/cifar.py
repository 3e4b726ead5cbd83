"""CIFAR100Subset: the thesis's 12 nature classes of CIFAR-100, read from the official archives.

Both official layouts are read from a local ``root``, extracted or as the ``.tar.gz``:

* python version: ``cifar-100-python/{meta,train,test}`` (pickles, read with a restricted
  unpickler that admits only plain containers and numpy arrays);
* binary version: ``cifar-100-binary/{train.bin,test.bin,fine_label_names.txt}``.

Nothing is downloaded unless ``download`` is set to true (then torchvision's downloader fetches the
python version).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from datamodules.base import ImageDataModule, check_loader_options
from lit_colorize.errors import ConfigError, DataError
from lit_colorize.augment import RandomCropRotateFlip

THESIS_CLASSES: tuple[str, ...] = (
    "apple", "sunflower", "rose", "cloud", "maple_tree", "oak_tree",
    "pine_tree", "willow_tree", "palm_tree", "mountain", "forest", "sea",
)  # fmt: skip

PYTHON_DIR, BINARY_DIR = "cifar-100-python", "cifar-100-binary"
#: Official md5 sums (www.cs.toronto.edu/~kriz/cifar.html and torchvision's CIFAR100).
OFFICIAL_MD5 = {
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-binary.tar.gz": "03b5dce01913d631647c71ecec9e9cb8",
    f"{PYTHON_DIR}/train": "16019d7e3df5f24257cddd939b257f8d",
    f"{PYTHON_DIR}/test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    f"{PYTHON_DIR}/meta": "7973b15100ade9c7d40fb424638fde48",
}
DOWNLOAD_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays, and refuses anything else,
    so a tampered archive cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only plain data is allowed")


def load_plain_pickle(data: bytes, source: str) -> dict:
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise DataError(f"{source} is not a CIFAR-100 python-version file: {error}") from error


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_md5(name: str, data: bytes, source: str) -> None:
    expected = OFFICIAL_MD5.get(name)
    if expected is not None and hashlib.md5(data).hexdigest() != expected:
        warnings.warn(f"{source} does not match the official CIFAR-100 checksum; reading it anyway", stacklevel=3)


class _ArchiveReader:
    """Reads member files of one CIFAR-100 layout from a folder or its .tar.gz."""

    def __init__(self, root: Path, folder: str) -> None:
        self.root, self.folder = root, folder
        self.directory = root / folder
        self.archive = root / f"{folder}.tar.gz"
        self._members: dict[str, bytes] | None = None
        if not self.directory.is_dir():
            if not self.archive.is_file():
                raise FileNotFoundError(self.directory)
            data = self.archive.read_bytes()
            _check_md5(self.archive.name, data, str(self.archive))
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                self._members = {
                    m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile() and m.name.startswith(folder)
                }

    @property
    def source(self) -> str:
        return str(self.directory if self._members is None else self.archive)

    def read(self, name: str) -> bytes:
        key = f"{self.folder}/{name}"
        if self._members is None:
            path = self.directory / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing from the extracted CIFAR-100 folder")
            data = path.read_bytes()
            _check_md5(key, data, str(path))
            return data
        if key not in self._members:
            raise FileNotFoundError(f"{key} is missing from {self.archive}")
        return self._members[key]


def _read_python(reader: _ArchiveReader, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    meta = load_plain_pickle(reader.read("meta"), f"{reader.source}/meta")
    names = [_text(n) for n in meta[b"fine_label_names"]]
    batch = load_plain_pickle(reader.read(split), f"{reader.source}/{split}")
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(batch[b"fine_labels"], dtype=np.int64), names


def _read_binary(reader: _ArchiveReader, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    names = [line.strip() for line in reader.read("fine_label_names.txt").decode().splitlines() if line.strip()]
    raw = np.frombuffer(reader.read(f"{split}.bin"), dtype=np.uint8)
    record = 2 + 3 * 32 * 32  # coarse label, fine label, pixels
    if raw.size % record:
        raise DataError(f"{reader.source}/{split}.bin is not a whole number of {record}-byte CIFAR-100 records")
    raw = raw.reshape(-1, record)
    return raw[:, 2:].reshape(-1, 3, 32, 32), raw[:, 1].astype(np.int64), names


def read_cifar100(
    root: str | Path, splits: str | Sequence[str], download: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]] | tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, 3, 32, 32) uint8, fine labels (N,) and the 100 fine class names of a split.

    Several splits (``["train", "test"]``) give a dict and open the archive once: a .tar.gz is
    read and checked a single time.
    """
    names = [splits] if isinstance(splits, str) else list(splits)
    for split in names:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root).expanduser()
    for folder, read in ((PYTHON_DIR, _read_python), (BINARY_DIR, _read_binary)):
        try:
            reader = _ArchiveReader(root, folder)
        except FileNotFoundError:
            continue
        result = {split: read(reader, split) for split in names}
        return result[splits] if isinstance(splits, str) else result
    if download:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(DOWNLOAD_URL, str(root), md5=OFFICIAL_MD5["cifar-100-python.tar.gz"])
        return read_cifar100(root, splits, download=False)
    raise FileNotFoundError(
        f"CIFAR-100 not found under {root}. Put the official python version there, as "
        f"{root / PYTHON_DIR}/ (meta, train, test) or {root / (PYTHON_DIR + '.tar.gz')}, or the binary version "
        f"as {root / BINARY_DIR}/ or {root / (BINARY_DIR + '.tar.gz')} (from {DOWNLOAD_URL.rsplit('/', 1)[0]}/cifar.html); "
        f"or pass download: true on a machine that is online."
    )


def select_classes(
    images: np.ndarray, labels: np.ndarray, names: Sequence[str], classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Keep only the named fine classes; labels become indices into ``classes``."""
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ConfigError(f"unknown CIFAR-100 fine classes {unknown}; known names include {list(names)[:8]}...")
    lookup = np.full(len(names), -1, dtype=np.int64)
    for new_index, name in enumerate(classes):
        lookup[names.index(name)] = new_index
    new_labels = lookup[labels]
    keep = new_labels >= 0
    return images[keep], new_labels[keep]


class LabeledImages(Dataset):
    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]


class CIFAR100Subset(ImageDataModule):
    """Chosen fine classes of CIFAR-100 (default: the thesis's 12, 6,000 train / 1,200 test).

    Batches are ``(uint8 images (B, 3, 32, 32), labels)``. Training augmentation (random
    resized crop back to 32 and horizontal flip) runs on the device, on whole batches, via
    :attr:`train_augmentation`, which the module applies after the transfer.
    """

    def __init__(
        self,
        root: str = "data/cifar100",
        classes: Sequence[str] = THESIS_CLASSES,
        download: bool = False,
        batch_size: int = 64,
        num_workers: int = 0,
        crop_scale: tuple[float, float] = (0.7, 1.0),
        flip_p: float = 0.5,
    ) -> None:
        super().__init__()
        check_loader_options(batch_size, num_workers)
        self.save_hyperparameters()
        self.classes = list(classes)
        self.train_set: LabeledImages | None = None
        self.val_set: LabeledImages | None = None
        self.train_augmentation = self._augmentation(crop_scale, flip_p)

    @staticmethod
    def _augmentation(crop_scale: tuple[float, float], flip_p: float) -> nn.Module:
        return RandomCropRotateFlip(32, scale=tuple(crop_scale), hflip=flip_p)

    def val_classes(self) -> Tensor | None:
        return None if self.val_set is None else self.val_set.labels

    def prepare_data(self) -> None:
        if self.hparams.download:
            read_cifar100(self.hparams.root, "train", download=self.hparams.download)

    def _subset(self, images: np.ndarray, labels: np.ndarray, names: list[str]) -> LabeledImages:
        images, labels = select_classes(images, labels, names, self.classes)
        return LabeledImages(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            splits = read_cifar100(self.hparams.root, ["train", "test"])
            self.train_set, self.val_set = self._subset(*splits["train"]), self._subset(*splits["test"])
