"""Callbacks: the bin color table, sample grids, run checkpoints and progress; the
colorized-photo writer (part of predict, in ``lit_colorize.photo_writer``) is named here too."""

from callbacks.color_table_builder import ColorTableBuilder
from callbacks.progress import LogProgressBar, auto_progress_bar
from callbacks.run_checkpoint import RunCheckpoint
from callbacks.sample_grid import SampleGrid
from lit_colorize.photo_writer import ColorizedPhotoWriter

#: The builder's earlier name, kept so the config.yaml of runs made before the rename still loads.
BinColorTable = ColorTableBuilder

__all__ = ["BinColorTable", "ColorTableBuilder", "ColorizedPhotoWriter", "LogProgressBar", "RunCheckpoint", "SampleGrid", "auto_progress_bar"]
