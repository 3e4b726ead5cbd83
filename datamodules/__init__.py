"""LightningDataModules that yield uint8 RGB batches."""

from datamodules.toyshapes import ToyShapes, make_toy_shapes

__all__ = ["ToyShapes", "make_toy_shapes"]
