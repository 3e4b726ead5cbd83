"""A user's photos as prediction inputs: files and folders in, one decoded photo per item.

A photo that cannot be read becomes an item that carries its error instead of pixels, so a
run over a folder reports it by path and goes on with the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from lit_colorize.imageio import ImageReadError, read_image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


@dataclass
class PhotoItem:
    """One input photo. ``relative_dir`` is where its outputs go below the output folder (the
    subfolder it was found in, for a folder input); ``rgb``/``alpha`` are None when ``error``."""

    path: str
    relative_dir: str = ""
    rgb: Tensor | None = None
    alpha: Tensor | None = None
    error: str | None = None


@dataclass
class ColorizedPhoto:
    """What predicting one photo gives: uint8 RGB (3, H, W) per temperature, or its error."""

    item: PhotoItem
    temperatures: list[float] = field(default_factory=list)
    images: list[Tensor] = field(default_factory=list)


def find_photos(inputs: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(file, relative output folder) for every input: files as given (any extension), folders
    searched recursively for image files, in sorted order. A missing input is an error."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    found: list[tuple[Path, str]] = []
    for entry in inputs:
        root = Path(entry).expanduser()
        if root.is_file():
            found.append((root, ""))
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    relative = path.parent.relative_to(root).as_posix()
                    found.append((path, "" if relative == "." else relative))
        else:
            raise FileNotFoundError(f"input {root} does not exist: give photo files or folders of photos")
    if not found:
        raise FileNotFoundError(
            f"no photos found in {[str(i) for i in inputs]} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return found


class PhotoDataset(Dataset):
    """Decodes each photo at full resolution (torchvision.io or Pillow; EXIF orientation,
    alpha kept); unreadable files give an item with ``error`` set."""

    def __init__(self, inputs: Sequence[str | Path]) -> None:
        self.photos = find_photos(inputs)

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> PhotoItem:
        path, relative_dir = self.photos[index]
        try:
            decoded = read_image(path)
        except ImageReadError as error:
            return PhotoItem(str(path), relative_dir, error=str(error))
        return PhotoItem(str(path), relative_dir, decoded.rgb, decoded.alpha)


def collate_photos(items: list[PhotoItem]) -> list[PhotoItem]:
    """Photos differ in size: a batch is a list, not a stacked tensor."""
    return list(items)
