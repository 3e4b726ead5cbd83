"""Callbacks: the bin color table and the sample grids."""

from callbacks.bin_color_table import BinColorTable
from callbacks.sample_grid import SampleGrid

__all__ = ["BinColorTable", "SampleGrid"]
