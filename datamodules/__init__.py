"""LightningDataModules that yield uint8 RGB batches."""

from datamodules.cifar import CIFAR100Subset
from datamodules.folders import PhotoFolders, PhotoRoot
from datamodules.landscape import Landscape
from datamodules.photos import Photos
from datamodules.streaming import StreamingShards
from datamodules.toyshapes import ToyShapes, make_toy_shapes

__all__ = ["CIFAR100Subset", "Landscape", "PhotoFolders", "PhotoRoot", "Photos", "StreamingShards", "ToyShapes", "make_toy_shapes"]
