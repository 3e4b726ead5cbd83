"""Callbacks: the bin color table, sample grids, run checkpoints and progress; the
colorized-photo writer (part of predict, in ``lit_colorize.photo_writer``) is named here too."""

from callbacks.bin_color_table import BinColorTable
from callbacks.progress import LogProgressBar, auto_progress_bar
from callbacks.run_checkpoint import RunCheckpoint
from callbacks.sample_grid import SampleGrid
from lit_colorize.photo_writer import ColorizedPhotoWriter

__all__ = ["BinColorTable", "ColorizedPhotoWriter", "LogProgressBar", "RunCheckpoint", "SampleGrid", "auto_progress_bar"]
