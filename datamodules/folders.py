"""PhotoFolders: train on any folders or file lists of photos (yours, the general corpus, a
domain of your own), read on the fly, so memory does not grow with the number of photos.

Why not Landscape: Landscape decodes every photo once into a square center-cropped cache,
which loses a third of a 3:2 photo and holds the whole set in one array. Here each draw is a
square crop of random size and place from the whole photo, at the photo's own aspect (no
stretching), decoded in the loader workers; JPEGs are decoded at a reduced scale where the
crop allows it (Pillow's draft mode), which keeps the loader ahead of the model on a CPU.

Each root has a sampling weight: an epoch takes from each root its weight's share of the
draws, without replacement within the root until it is used up, so a large source does not
drown a small one. A root's held-out photos come from a file list (the corpus's
``docs/data/heldout.txt``), else from a seeded ``val_fraction`` of it. Unreadable files (and,
with ``drop_gray``, near-gray ones) are found when the module is set up, reported by path,
and left out, never met mid-epoch; the scan is cached under ``cache_dir``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from datamodules.base import ImageDataModule, check_loader_options
from lit_colorize.atomic import atomic_path
from lit_colorize.augment import RandomHorizontalFlip
from lit_colorize.corpus import is_near_gray, shrink
from lit_colorize.errors import ConfigError, DataError
from lit_colorize.files import has_image_suffix, image_files
from lit_colorize.imageio import pillow_pixels

log = logging.getLogger(__name__)

SCAN_SIDE = 64  # the scan decodes at about this size: enough for the gray rule, cheap for 100k photos


@dataclass(frozen=True)
class PhotoRoot:
    """One source of photos. ``files`` and ``held_out`` are file lists (one path a line, ``#``
    comments) relative to ``path``; ``prefix`` keeps only listed paths under that subfolder, so
    one corpus folder can be several roots with weights of their own. ``exclude``, a file list
    too, is neither trained nor validated on: photos kept apart for tuning (a decoding, a
    working size), so that choice is made on photos the model never saw, and the held-out
    photos stay for the report."""

    path: str
    weight: float = 1.0
    files: str | None = None
    held_out: str | None = None
    prefix: str = ""
    exclude: str | None = None


def read_file_list(listing: str | Path) -> list[str]:
    """The paths of a file list, in order; one line naming the file when it cannot be read."""
    try:
        lines = Path(listing).expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"cannot read the file list {listing}: {error.strerror}; check data.init_args.roots") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def open_photo(path: Path, min_side: int) -> Image.Image:
    """RGB, EXIF orientation applied, decoded at the smallest JPEG scale whose shorter side is
    still at least ``min_side`` (full size for other formats)."""
    with Image.open(path) as image:
        if image.format == "JPEG":
            scale = min(image.size) / max(min_side, 1)
            image.draft("RGB", (max(1, int(image.width / scale)), max(1, int(image.height / scale))))
        image.load()
        rgb, _ = pillow_pixels(ImageOps.exif_transpose(image))
    return Image.fromarray(rgb)


def scan_photo(path: Path, gray_threshold: float | None) -> str | None:
    """Why ``path`` cannot be trained on ("unreadable: ...", "near-gray"), or None."""
    try:
        image = open_photo(path, SCAN_SIDE)
    except Exception as error:  # noqa: BLE001 - any decoder failure means the same: leave it out
        return f"unreadable: {type(error).__name__}: {str(error)[:80]}"
    if min(image.size) < 2:
        return f"unreadable: {image.width}x{image.height} pixels"
    if gray_threshold is not None:
        if is_near_gray(shrink(image, SCAN_SIDE), gray_threshold):
            return "near-gray"
    return None


def random_square_crop(image: Image.Image, size: int, scale: tuple[float, float], rng: np.random.Generator) -> Image.Image:
    """A square of side ``s`` x the shorter side (``s`` uniform in ``scale``), anywhere in the
    photo, resized to ``size``: every part of the photo can be drawn, nothing is stretched."""
    side = max(1, round(min(image.size) * rng.uniform(*scale)))
    left = int(rng.integers(0, image.width - side + 1))
    top = int(rng.integers(0, image.height - side + 1))
    return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side), reducing_gap=2.0)


def center_square(image: Image.Image, size: int) -> Image.Image:
    """The validation view: the largest centred square, resized to ``size`` (the same every epoch)."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side), reducing_gap=2.0)


def to_tensor(image: Image.Image) -> Tensor:
    """(3, H, W) uint8, laid out in NumPy: no torch op, so no intra-op threads in the loader."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1)))


def collate_labelled(items: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """(uint8 images (B, 3, S, S), labels), stacked in NumPy. With 0 workers the loader runs in
    the training process, and torch's stack there uses its intra-op threads, which made this
    loader 5-10x slower on a busy machine (as for the shards: benchmarks/loader.py)."""
    images = np.stack([image.numpy() for image, _ in items])
    labels = np.array([int(label) for _, label in items], dtype=np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


class PhotoSet(Dataset):
    """Photos by path, decoded when drawn. A training item is asked for as ``(index, seed)``:
    the crop is drawn from ``seed``, so a draw is the same in any worker and after a resume."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], image_size: int, crop_scale: tuple[float, float] | None):
        self.paths, self.labels = list(paths), torch.tensor(list(labels), dtype=torch.long)
        self.image_size, self.crop_scale = image_size, crop_scale

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, item)
        if self.crop_scale is None:
            image = center_square(open_photo(self.paths[index], self.image_size), self.image_size)
        else:
            min_side = round(self.image_size / self.crop_scale[1])
            photo = open_photo(self.paths[index], min_side)
            image = random_square_crop(photo, self.image_size, self.crop_scale, np.random.default_rng(seed))
        return to_tensor(image), self.labels[index]


class WeightedRootSampler(Sampler[tuple[int, int]]):
    """An epoch of ``num_samples`` draws: root ``r`` gets ``weight_r / sum(weights)`` of them,
    taken without replacement from a seeded permutation of its photos (again from the start
    when a small root's share is larger than the root), interleaved at random. Seeded by
    ``(seed, epoch)``, so every DDP rank draws the same sequence and Lightning's distributed
    wrapper gives each rank its own disjoint part of it."""

    def __init__(self, groups: Sequence[Sequence[int]], weights: Sequence[float], num_samples: int, seed: int,
                 epoch: Callable[[], int]) -> None:  # fmt: skip
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups]
        self.weights = np.asarray(weights, dtype=np.float64)
        self.num_samples, self.seed, self.epoch = num_samples, seed, epoch

    def __len__(self) -> int:
        return self.num_samples

    def quotas(self) -> np.ndarray:
        """Draws per root: largest remainders of the weighted shares, summing to ``num_samples``."""
        active = np.array([len(g) > 0 for g in self.groups]) & (self.weights > 0)
        shares = np.where(active, self.weights, 0.0) / np.where(active, self.weights, 0.0).sum() * self.num_samples
        quotas = np.floor(shares).astype(np.int64)
        order = np.argsort(-(shares - quotas), kind="stable")
        quotas[order[: self.num_samples - quotas.sum()]] += 1
        return quotas

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch()])
        drawn = []
        for group, quota in zip(self.groups, self.quotas()):
            repeats = -(-quota // len(group)) if len(group) else 0
            drawn.append(np.concatenate([rng.permutation(group) for _ in range(repeats)] or [group])[:quota])
        order = np.concatenate(drawn)[rng.permutation(self.num_samples)]
        seeds = rng.integers(0, 2**62, self.num_samples)
        return iter([(int(i), int(s)) for i, s in zip(order, seeds)])


class PhotoFolders(ImageDataModule):
    """Photos from ``roots`` (see :class:`PhotoRoot`), ``image_size`` square crops, uint8 batches.

    Train: a random square of ``crop_scale`` x the shorter side, anywhere in the photo, and a
    horizontal flip on the device. Validation: the centred square. The class of a photo (for
    the sample grid and per-category metrics) is the name of its folder.
    """

    def __init__(
        self,
        roots: Sequence[PhotoRoot | dict] = (PhotoRoot("../shared/data/landscape"),),
        image_size: int = 64,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        val_fraction: float = 0.05,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        drop_gray: bool = True,
        gray_threshold: float = 6.0,
        cache_dir: str = ".cache/lit-colorize",
    ) -> None:
        super().__init__()
        check_loader_options(batch_size, num_workers)
        roots = [PhotoRoot(**root) if isinstance(root, dict) else root for root in roots]
        if not roots or any(not root.weight >= 0 for root in roots) or not any(root.weight > 0 for root in roots):
            raise ConfigError("roots must name at least one folder, with weights >= 0 and at least one above 0")
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ConfigError(f"crop_scale must be (low, high) with 0 < low <= high <= 1, got {crop_scale}")
        self.save_hyperparameters(ignore=["roots"])
        self.hparams["roots"] = [dataclasses.asdict(root) for root in roots]  # plain types: checkpoints load with weights_only
        self.roots = roots
        self.train_set: PhotoSet | None = None
        self.val_set: PhotoSet | None = None
        self.class_names: list[str] = []
        self.train_groups: list[list[int]] = []
        self.train_augmentation = RandomHorizontalFlip()

    def root_photos(self, root: PhotoRoot) -> tuple[list[Path], list[Path] | None]:
        """(training candidates, listed held-out photos or None) of one root."""
        folder = Path(root.path).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"photo folder {folder} does not exist; set data.init_args.roots to your folders")
        if root.files is None:
            paths = image_files(folder)
        else:
            paths = [folder / name for name in read_file_list(root.files) if name.startswith(root.prefix)]
        held = None
        if root.held_out is not None:
            held = [folder / name for name in read_file_list(root.held_out) if name.startswith(root.prefix)]
            held_set = set(held)
            paths = [path for path in paths if path not in held_set]
        if root.files is None and root.prefix:
            paths = [path for path in paths if path.relative_to(folder).as_posix().startswith(root.prefix)]
        if root.exclude is not None:
            excluded = {folder / name for name in read_file_list(root.exclude)}
            paths = [path for path in paths if path not in excluded]
            held = None if held is None else [path for path in held if path not in excluded]
        return [p for p in paths if has_image_suffix(p)], held

    def scan(self, paths: Sequence[Path]) -> dict[str, str]:
        """path -> why it is left out, for every bad (or near-gray) photo; cached by the files'
        paths, sizes and modification times, so a second setup reads no photo."""
        threshold = self.hparams.gray_threshold if self.hparams.drop_gray else None
        digest = hashlib.sha1(f"{threshold}".encode())
        for path in paths:
            try:
                stat = path.stat()
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{path}\0missing\n".encode())
        cache = Path(self.hparams.cache_dir).expanduser() / f"photofolders-{digest.hexdigest()[:20]}.json"
        if cache.is_file():
            return json.loads(cache.read_text(encoding="utf-8"))
        found = {str(path): reason for path in paths if (reason := scan_photo(path, threshold)) is not None}
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as temporary:
            Path(temporary).write_text(json.dumps(found), encoding="utf-8")
        return found

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        train_by_root, val = [], []
        for number, root in enumerate(self.roots):
            paths, held = self.root_photos(root)
            if held is None:  # a seeded split of this root
                order = np.random.default_rng([hp.seed, number]).permutation(len(paths))
                count = max(1, round(hp.val_fraction * len(paths))) if len(paths) > 1 else 0
                held = [paths[i] for i in sorted(order[:count])]
                paths = [paths[i] for i in sorted(order[count:])]
            train_by_root.append(paths)
            val.extend(held)
        left_out = self.scan([p for paths in train_by_root for p in paths] + val)
        for path, reason in sorted(left_out.items()):
            if not reason.startswith("near-gray"):
                log.warning("PhotoFolders: leaving out %s (%s)", path, reason)
        train_by_root = [[p for p in paths if str(p) not in left_out] for paths in train_by_root]
        val = [p for p in val if not left_out.get(str(p), "").startswith("unreadable")]  # gray photos still measure
        gray = sum(reason == "near-gray" for reason in left_out.values())
        if not any(train_by_root):
            raise DataError(f"no training photos left in {[r.path for r in self.roots]} ({len(left_out)} left out)")
        if not val:
            raise DataError(f"no validation photos in {[r.path for r in self.roots]}: give a held_out list or more photos")
        train = [p for paths in train_by_root for p in paths]
        self.class_names = sorted({category_of(p) for p in train + val})
        label = {name: i for i, name in enumerate(self.class_names)}
        offsets = np.cumsum([0] + [len(paths) for paths in train_by_root])
        self.train_groups = [list(range(offsets[i], offsets[i + 1])) for i in range(len(train_by_root))]
        self.train_set = PhotoSet(train, [label[category_of(p)] for p in train], hp.image_size, tuple(hp.crop_scale))
        self.val_set = PhotoSet(val, [label[category_of(p)] for p in val], hp.image_size, None)
        log.info(
            "PhotoFolders: %d train / %d val photos in %d roots, %d classes; %d unreadable and %d near-gray left out",
            len(train), len(val), len(self.roots), len(self.class_names), len(left_out) - gray, gray,
        )  # fmt: skip

    def val_classes(self) -> Tensor | None:
        return None if self.val_set is None else self.val_set.labels

    def val_paths(self) -> list[Path]:
        if self.val_set is None:
            raise RuntimeError("PhotoFolders.setup() has not run yet")
        return list(self.val_set.paths)

    def current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_sampler(self) -> WeightedRootSampler:
        if self.train_set is None:
            raise RuntimeError("PhotoFolders.setup() has not run yet")
        samples = self.hparams.samples_per_epoch or len(self.train_set)
        weights = [root.weight for root in self.roots]
        return WeightedRootSampler(self.train_groups, weights, samples, self.hparams.seed, self.current_epoch)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            self.train_set,  # type: ignore[arg-type]
            batch_size=self.hparams.batch_size,
            sampler=self.train_sampler(),
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            collate_fn=collate_labelled,
        )

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        if self.val_set is None:
            raise RuntimeError("PhotoFolders.setup() has not run yet")
        return torch.utils.data.DataLoader(
            self.val_set,
            batch_size=self.hparams.batch_size,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            collate_fn=collate_labelled,
        )


def category_of(path: Path) -> str:
    """A photo's class: the name of the folder it is in."""
    return path.parent.name
