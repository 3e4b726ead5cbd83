"""lit-colorize: image colorization as per-pixel classification over quantized ab bins."""

from lit_colorize.bins import ColorHistogram, ColorTable, ab_to_bin, bin_centers
from lit_colorize.colorizer import Colorizer
from lit_colorize.module import ColorizationModule
from lit_colorize.network import ColorizationNet
from lit_colorize.unet import PRESETS, UNet

__all__ = ["ColorHistogram", "ColorTable", "ColorizationModule", "ColorizationNet", "Colorizer", "PRESETS", "UNet", "ab_to_bin", "bin_centers"]
