"""Callbacks: the bin color table, the sample grids and the colorized-photo writer."""

from callbacks.bin_color_table import BinColorTable
from callbacks.photo_writer import ColorizedPhotoWriter
from callbacks.sample_grid import SampleGrid

__all__ = ["BinColorTable", "ColorizedPhotoWriter", "SampleGrid"]
