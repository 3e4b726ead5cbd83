"""StreamingShards: train from shard sets (``scripts/make_shards.py``) on a local path or in an
S3-compatible object store, through LitData, resumable mid-epoch.

Why: PhotoFolders lists and scans every photo at setup and reads one small file per draw; at
a million photos on a shared file system or in an object store that is the bottleneck. Here
the photos are JPEG bytes in large chunks that LitData streams, splits across ranks and
workers (each sees disjoint samples), shuffles with ``seed`` and the epoch, and caches
locally. The crops and the device augmentation are PhotoFolders' own, so batches are the same.

The training loader is a ``StreamingDataLoader``: Lightning stores its state in the
checkpoint, so ``--ckpt_path last`` continues with the samples of the epoch not yet seen.
A chunk whose size or header is not what the set's index says (a truncated or damaged copy) is
found at setup and left out: one line names the set and the chunk, :attr:`StreamingShards.damaged_chunks`
counts it, and every epoch trains on the other chunks (LitData would otherwise wait on it until
it timed out). A damaged photo inside a whole chunk is skipped and logged with its source path.
A missing chunk, a wrong URI, refused credentials or a set written by another format version
fail at setup, in one line naming the set.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import Tensor

from datamodules.base import ImageDataModule, check_loader_options
from datamodules.folders import center_square, random_square_crop
from lit_colorize.augment import RandomHorizontalFlip
from lit_colorize.errors import ConfigError
from lit_colorize.shards import check_shard_set, decode_jpeg, is_remote, sample_key

log = logging.getLogger(__name__)

# Photos the color table is built from by default; benchmarks/color_sample.py measures how close
# such a sample comes to the whole set (README, "Training at scale").
COLOR_SAMPLE = 20_000


def plain_http_downloader() -> type:
    """A boto3-only ``s3://`` downloader for plain-http endpoints (an in-cluster MinIO, a test
    server): LitData's default S3 path goes through obstore, which refuses http URLs."""
    import boto3
    from litdata.streaming.downloader import Downloader

    class PlainHttpS3Downloader(Downloader):
        def __init__(self, remote_dir: str, cache_dir: str, chunks: list, storage_options: dict | None = None,
                     **kwargs: Any) -> None:  # fmt: skip
            super().__init__(remote_dir, cache_dir, chunks, storage_options, **kwargs)
            self.client_options = dict(storage_options or {})
            self.client: Any = None  # one per downloader (boto3 clients are thread-safe; making one takes ~50 ms)

        def download_file(self, remote_filepath: str, local_filepath: str) -> None:
            if os.path.exists(local_filepath):
                return
            parsed = urlparse(remote_filepath)
            if self.client is None:
                self.client = boto3.client("s3", **self.client_options)
            client = self.client
            temporary = f"{local_filepath}.{os.getpid()}.partial"
            os.makedirs(os.path.dirname(local_filepath) or ".", exist_ok=True)
            client.download_file(parsed.netloc, parsed.path.lstrip("/"), temporary)
            os.replace(temporary, local_filepath)

    return PlainHttpS3Downloader


def use_plain_http(storage_options: dict[str, Any] | None) -> None:
    """Register :func:`plain_http_downloader` for ``s3://`` when the endpoint is http://."""
    endpoint = (storage_options or {}).get("endpoint_url") or ""
    if endpoint.startswith("http://"):
        from litdata.streaming.downloader import register_downloader

        register_downloader("s3://", plain_http_downloader(), overwrite=True)


def make_shard_set_class() -> type:
    """The dataset class, built on first use so importing datamodules does not need litdata."""
    from litdata import StreamingDataset

    class ShardSet(StreamingDataset):
        """Samples of a shard set as ``(uint8 (S, S, 3) array, label, index)``; a damaged photo as
        None (skipped by :func:`collate_photos`). Training crops are drawn from ``(seed, epoch,
        index)``, so a sample's crop is the same in any worker and after a resume."""

        def __init__(self, uri: str, image_size: int, crop_scale: tuple[float, float] | None, seed: int,
                     train: bool, cache_dir: str | None, storage_options: dict[str, Any] | None,
                     left_out: Collection[str] = ()) -> None:  # fmt: skip
            super().__init__(
                uri, cache_dir=cache_dir, shuffle=train, seed=seed, storage_options=storage_options or {},
                drop_last=None if train else False,
            )  # fmt: skip
            if left_out:  # damaged chunks: out of the chunk list LitData splits, as its own subsample does
                kept = [(name, region) for name, region in zip(self.subsampled_files, self.region_of_interest)
                        if name not in left_out]  # fmt: skip
                self.subsampled_files, self.region_of_interest = [n for n, _ in kept], [r for _, r in kept]
            self.image_size, self.crop_scale, self.crop_seed = image_size, crop_scale, seed
            # the smallest shorter side a decode may have and still give the smallest crop full resolution
            self.decode_side = math.ceil(image_size / (crop_scale[0] if crop_scale else 1.0))
            self.uri = uri

        def __getitem__(self, index: Any) -> tuple[np.ndarray, int, int] | None:
            item = super().__getitem__(index)
            position = int(getattr(index, "index", index))
            try:
                photo = decode_jpeg(item["jpeg"], self.decode_side)
            except ValueError as error:
                log.warning("StreamingShards: skipping damaged photo %s in %s (%s)", sample_key(item), self.uri, error)
                return None
            if self.crop_scale is None:
                image = center_square(photo, self.image_size)
            else:
                rng = np.random.default_rng([self.crop_seed, self.current_epoch, position])
                image = random_square_crop(photo, self.image_size, self.crop_scale, rng)
            return np.asarray(image), int(item["label"]), position

    return ShardSet


def collate_photos(items: list[tuple[np.ndarray, int, int] | None]) -> tuple[Tensor, Tensor, Tensor]:
    """(uint8 images (B, 3, S, S), labels, sample indices) of the readable items; damaged ones
    are counted out. Batched in NumPy, not torch: with 0 workers the loader runs in the
    training process, whose torch ops use its intra-op threads, and on a busy machine those
    threads made the loader 5-10x slower (benchmarks/loader.py, README)."""
    kept = [item for item in items if item is not None]
    if not kept:
        return torch.zeros(0, 3, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    images = np.ascontiguousarray(np.stack([image for image, _, _ in kept]).transpose(0, 3, 1, 2))
    return (
        torch.from_numpy(images),
        torch.tensor([label for _, label, _ in kept], dtype=torch.long),
        torch.tensor([position for _, _, position in kept], dtype=torch.long),
    )


class StreamingShards(ImageDataModule):
    """Shard sets ``{shards}/train`` and ``{shards}/val`` (or ``train``/``val`` given apart), a
    local path or ``s3://bucket/prefix``; ``endpoint_url`` for S3-compatible stores (MinIO).
    Batches are ``(uint8 images, labels, sample indices)``: the indices let a run record what it
    trained on. Credentials come from the usual AWS environment variables or profile.

    ``color_sample``: the bin color table and the rebalancing prior (``ColorTableBuilder``) come
    from the first this many training photos, not a pass over millions: the set is stored in a
    seeded random order, so they are a uniform sample, and the ranks share them out and sum, so
    every rank, whatever their number, gets the same table. ``None`` reads the whole set."""

    def __init__(
        self,
        shards: str | None = None,
        train: str | None = None,
        val: str | None = None,
        image_size: int = 128,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 4,
        endpoint_url: str | None = None,
        cache_dir: str | None = None,
        color_sample: int | None = COLOR_SAMPLE,
    ) -> None:
        super().__init__()
        check_loader_options(batch_size, num_workers)
        if color_sample is not None and color_sample < 1:
            raise ConfigError(f"color_sample must be a number of photos >= 1 (or null for the whole set), got {color_sample}")
        if shards is None and (train is None or val is None):
            raise ConfigError("StreamingShards needs data.init_args.shards, or both train and val shard set paths")
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ConfigError(f"crop_scale must be (low, high) with 0 < low <= high <= 1, got {crop_scale}")
        self.save_hyperparameters()
        base = (shards or "").rstrip("/")
        self.train_uri = train or f"{base}/train"
        self.val_uri = val or f"{base}/val"
        self.storage_options = {"endpoint_url": endpoint_url} if endpoint_url else {}
        self.train_augmentation = RandomHorizontalFlip()
        self.class_names: list[str] = []
        self.damaged_chunks: dict[str, str] = {}  # "<set>/<chunk>" -> what is wrong with it
        self.train_loader: Any = None
        self.pending_loader_state: dict[str, Any] | None = None

    def cache_for(self, uri: str) -> str | None:
        """A local cache folder per remote set (LitData's default otherwise); none for local sets."""
        if not is_remote(uri) or self.hparams.cache_dir is None:
            return None
        return str(Path(self.hparams.cache_dir).expanduser() / uri.replace("://", "/").replace("/", "_"))

    def make_set(self, uri: str, train: bool) -> Any:
        """The checked shard set at ``uri``; its damaged chunks are left out, each reported in
        one line and counted in :attr:`damaged_chunks`."""
        hp = self.hparams
        check = check_shard_set(uri, self.storage_options)
        for name, problem in check.damaged.items():
            if rank_zero_only.rank == 0:  # every rank finds it; one says it
                log.warning("StreamingShards: chunk %s of shard set %s is %s; its photos are left out and the other %d "
                            "of %d are read (copy it again or rebuild the set)", name, uri, problem,
                            check.photos - check.photos_left_out, check.photos)  # fmt: skip
            self.damaged_chunks[f"{uri.rstrip('/')}/{name}"] = problem
        self.class_names = self.class_names or list(check.manifest.get("classes", []))
        if not is_remote(uri):
            uri = str(Path(uri).expanduser().resolve())
        use_plain_http(self.storage_options)
        dataset_class = make_shard_set_class()
        crop = tuple(hp.crop_scale) if train else None
        return dataset_class(uri, hp.image_size, crop, hp.seed, train, self.cache_for(uri), self.storage_options,
                             left_out=set(check.damaged))  # fmt: skip

    @property
    def color_sample(self) -> int | None:
        """How many of the first training photos ``ColorTableBuilder`` reads: ``color_sample``, at
        most the whole set (known after setup; the dataset's own length is one rank's share)."""
        wanted = self.hparams.color_sample
        if self.train_set is None:
            return wanted
        total = sum(end - start for start, end in self.train_set.region_of_interest)
        return total if wanted is None else min(wanted, total)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set = self.make_set(self.train_uri, train=True)
        self.val_set = self.make_set(self.val_uri, train=False)
        log.info("StreamingShards: %d train / %d val photos from %s and %s", len(self.train_set), len(self.val_set),
                 self.train_uri, self.val_uri)  # fmt: skip

    def loader(self, dataset: Any) -> Any:
        from litdata import StreamingDataLoader

        if dataset is None:
            raise RuntimeError("StreamingShards.setup() has not run yet")
        return StreamingDataLoader(
            dataset, batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers, collate_fn=collate_photos,
            persistent_workers=self.hparams.num_workers > 0,
        )  # fmt: skip

    def train_dataloader(self) -> Any:
        loader = self.loader(self.train_set)
        if self.pending_loader_state is not None:
            loader.load_state_dict(self.pending_loader_state)
            self.pending_loader_state = None
        self.train_loader = loader
        return loader

    def state_dict(self) -> dict[str, Any]:
        """The training loader's place in the epoch, saved in every checkpoint. Lightning saves it
        too, but does not restore it when the loader was built before the loop state was loaded
        (``trainer.estimated_stepping_batches``, which the one-cycle schedule reads, builds it
        early); the DataModule's state is restored before any loader is built."""
        return {} if self.train_loader is None else {"train_loader": self.train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pending_loader_state = state_dict.get("train_loader")

    def val_dataloader(self) -> Any:
        return self.loader(self.val_set)
