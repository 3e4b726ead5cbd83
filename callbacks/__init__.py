"""Callbacks: the bin color table, sample grids, the colorized-photo writer and run checkpoints."""

from callbacks.bin_color_table import BinColorTable
from callbacks.photo_writer import ColorizedPhotoWriter
from callbacks.run_checkpoint import RunCheckpoint
from callbacks.sample_grid import SampleGrid

__all__ = ["BinColorTable", "ColorizedPhotoWriter", "RunCheckpoint", "SampleGrid"]
