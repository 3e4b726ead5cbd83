"""Build the per-bin color table from the training data before the first training step."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sized

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Subset

from lit_colorize.bins import ColorHistogram
from lit_colorize.color import rgb_to_lab
from lit_colorize.batches import images_of
from lit_colorize.module import ColorizationModule


class ColorTableBuilder(L.Callback):
    """Fills ``pl_module.color_table`` (counts, mean and mode ab per bin) from training images.

    Each process reads every ``world_size``-th training sample (without the repeats a
    DistributedSampler adds to even out the shards), on its device; the statistics are then
    summed across processes, so N processes build exactly the table one process builds
    over the same data. It does nothing when the module already holds a table (resumed or
    fine-tuned from a checkpoint) or has no table (regression head). ``max_batches`` bounds
    the pass per process; ``None`` reads all of the data. A DataModule with a ``color_sample``
    attribute (a number of samples, at most its training set's) gives the pass its first
    ``color_sample`` training samples instead, the same ones whatever the number of processes.
    """

    def __init__(self, max_batches: int | None = None) -> None:
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"max_batches must be None (all data) or >= 1, got {max_batches}")
        self.max_batches = max_batches

    def on_train_start(self, trainer: L.Trainer, pl_module: ColorizationModule) -> None:
        table = getattr(pl_module, "color_table", None)
        if table is None or bool(table.built):
            return
        start = time.perf_counter()
        histogram = ColorHistogram(table.grid_size, pl_module.device)
        num_batches = 0
        for batch in self._shard(trainer):
            if self.max_batches is not None and num_batches >= self.max_batches:
                break
            images = images_of(batch).to(pl_module.device, non_blocking=True)
            histogram.update(rgb_to_lab(images)[:, 1:])
            num_batches += 1
        for statistic in histogram.tensors():
            statistic.copy_(trainer.strategy.reduce(statistic, reduce_op="sum"))
        table.fill(histogram)
        pl_module.on_color_table_built()
        rank_zero_info(
            f"ColorTableBuilder: {int(histogram.counts.sum()):,} pixels from {num_batches} batches per process, "
            f"{int((table.counts > 0).sum())}/{table.num_bins} bins occupied, {time.perf_counter() - start:.1f}s"
        )

    @staticmethod
    def _shard(trainer: L.Trainer) -> Iterable:
        """This process's share of the training samples, each sample exactly once overall."""
        loader = trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if not isinstance(loader, DataLoader) or not isinstance(dataset, Sized):
            if trainer.world_size > 1:
                rank_zero_warn("ColorTableBuilder: the training data has no length; padded repeats may be counted twice")
            return loader
        # a DataModule may name how many of its first samples to read (StreamingShards does: its
        # dataset's length is that of one rank's share)
        limit = getattr(trainer.datamodule, "color_sample", None)
        indices = range(trainer.global_rank, len(dataset) if limit is None else limit, trainer.world_size)
        return DataLoader(
            Subset(dataset, indices),
            batch_size=loader.batch_size or 1,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
        )
