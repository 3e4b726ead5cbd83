"""Callbacks: the bin color table, sample grids, the colorized-photo writer, run checkpoints and progress."""

from callbacks.bin_color_table import BinColorTable
from callbacks.photo_writer import ColorizedPhotoWriter
from callbacks.progress import LogProgressBar, auto_progress_bar
from callbacks.run_checkpoint import RunCheckpoint
from callbacks.sample_grid import SampleGrid

__all__ = ["BinColorTable", "ColorizedPhotoWriter", "LogProgressBar", "RunCheckpoint", "SampleGrid", "auto_progress_bar"]
