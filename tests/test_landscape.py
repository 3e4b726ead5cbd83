"""Landscape: real photos, odd and bad files made here, the cache, device augmentation."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.landscape import ImageCache, Landscape, is_colorful, resize_and_crop
from lit_colorize import ColorizationModule
from tests.helpers import quick_trainer


def write_photos(folder: Path, count: int, size: tuple[int, int] = (40, 30), gray: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        if gray:
            pixels[:] = pixels[..., :1]
        path = folder / f"{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def test_resize_keeps_aspect_then_crops() -> None:
    image = torch.zeros(3, 30, 60, dtype=torch.uint8)
    image[:, :, 15:45] = 255  # the middle half is white
    out = resize_and_crop(image, 16)
    assert out.shape == (3, 16, 16) and out.dtype == torch.uint8
    assert out[:, :, 4:12].min() >= 250  # the crop is centered: white stays in the middle


def test_classes_seeded_split_bad_files_and_gray(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "photos"
    write_photos(root / "forest", 12)
    write_photos(root / "sea", 8)
    write_photos(root / "sea" / "more", 0)
    write_photos(root / "fog", 4, gray=True)
    (root / "sea" / "empty.jpg").write_bytes(b"")
    (root / "sea" / "notes.png").write_bytes(b"this is text")
    dm = Landscape(roots=[str(root)], image_size=16, val_fraction=0.25, cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="datamodules.landscape"):
        dm.setup()
    assert dm.class_names == ["fog", "forest", "sea"]
    assert "empty.jpg" in caplog.text and "notes.png" in caplog.text
    assert "2 unreadable files skipped" in caplog.text
    assert len(dm.val_set) == 6  # a quarter of the 24 readable photos
    train_labels = [dm.train_set.labels[i].item() for i in dm.train_set.indices]
    assert dm.class_names.index("fog") not in train_labels  # drop_gray left the gray photos out
    fog_in_val = sum(dm.val_set.labels[i].item() == dm.class_names.index("fog") for i in dm.val_set.indices)
    assert len(dm.train_set) == 24 - 6 - (4 - fog_in_val)
    assert dm.val_classes().tolist() == [dm.val_set[i][1].item() for i in range(len(dm.val_set))]  # for the sample grid
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)


def test_explicit_train_and_val_folders(tmp_path: Path) -> None:
    write_photos(tmp_path / "set" / "train" / "a", 5)
    write_photos(tmp_path / "set" / "val" / "a", 3)
    dm = Landscape(roots=[str(tmp_path / "set")], image_size=8, cache_dir=str(tmp_path / "cache"), drop_gray=False)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set)) == (5, 3)


def test_train_roots_train_only_and_the_held_out_split_is_that_of_roots_alone(tmp_path: Path) -> None:
    # The recipe's layout: Landscape split 80/20, BSDS500's train and val all for training.
    landscape = write_photos(tmp_path / "landscape" / "forest", 10)
    bsds = write_photos(tmp_path / "bsds" / "train", 4) + write_photos(tmp_path / "bsds" / "val", 2)
    write_photos(tmp_path / "bsds" / "test", 3)  # not listed: stays out for evaluation
    common = dict(image_size=8, val_fraction=0.2, seed=3, cache_dir=str(tmp_path / "cache"), drop_gray=False)
    alone = Landscape(roots=[str(tmp_path / "landscape")], **common)
    alone.setup()
    both = Landscape(roots=[str(tmp_path / "landscape")], train_roots=[str(tmp_path / "bsds")], **common)
    both.setup()
    assert (len(both.train_set), len(both.val_set)) == (8 + 6, 2)
    assert both.val_paths() == alone.val_paths()  # adding training data never moves the held-out split
    assert set(both.val_paths()) <= set(landscape)
    train_paths = {both.paths[i] for i in both.train_set.indices}
    assert set(bsds) <= train_paths and not any("test" in p.parts for p in both.paths)
    with pytest.raises(FileNotFoundError, match="train_roots"):
        Landscape(roots=[str(tmp_path / "landscape")], train_roots=[str(tmp_path / "nope")], **common).setup()


def test_empty_or_missing_folders_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        Landscape(roots=[str(tmp_path / "empty")], cache_dir=str(tmp_path / "c")).setup()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Landscape(roots=[str(tmp_path / "missing")], cache_dir=str(tmp_path / "c")).setup()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"junk")
    with pytest.raises(ValueError, match="could be read"):
        Landscape(roots=[str(tmp_path / "junk")], cache_dir=str(tmp_path / "c")).setup()


def test_cache_is_reused_and_rebuilt_on_change(tmp_path: Path) -> None:
    paths = write_photos(tmp_path / "p", 3)
    cache = ImageCache(tmp_path / "cache", 8)
    first, _ = cache.load(paths)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    again, _ = cache.load(paths)
    np.testing.assert_array_equal(first, again)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1  # reused, not rebuilt
    Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8)).save(paths[0])
    os.utime(paths[0], ns=(1, 1))  # a different modification time, whatever the clock
    changed, _ = cache.load(paths)
    assert changed[0].max() == 0 and len(list((tmp_path / "cache").glob("*.npy"))) == 2
    resized, _ = ImageCache(tmp_path / "cache", 4).load(paths)
    assert resized.shape == (3, 3, 4, 4)


def test_is_colorful_threshold() -> None:
    gray = torch.full((1, 3, 4, 4), 120, dtype=torch.uint8)
    red = gray.clone()
    red[0, 0, 0, 0] = 200
    assert is_colorful(torch.cat([gray, red]), 6.0).tolist() == [False, True]


def test_augmentation_runs_on_the_batch_device_and_keeps_l_and_ab_aligned(tmp_path: Path) -> None:
    dm = Landscape(roots=[str(tmp_path)], image_size=64, cache_dir=str(tmp_path / "c"))
    # Dark gray background (ab = 0) with a red square: L and chroma mark the same pixels.
    rgb = torch.full((4, 3, 64, 64), 0.2)
    rgb[:, :, 16:40, 20:44] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    out = dm.train_augmentation(rgb)
    assert out.device == rgb.device and out.shape == rgb.shape
    assert not torch.allclose(out, rgb)  # it did transform
    batch = ColorizationModule(grid_size=6).prepare_batch(out.clamp(0, 1))
    red_by_l = batch["l"][:, 0] > 0.4
    red_by_ab = batch["ab"].norm(dim=1) > 40
    overlap = (red_by_l & red_by_ab).sum() / (red_by_l | red_by_ab).sum()
    assert red_by_l.any() and overlap > 0.9


def test_fit_smoke_on_real_photos(shared_data: Path, tmp_path: Path) -> None:
    dm = Landscape(
        roots=[str(shared_data / "landscape")], image_size=32, max_images=48, batch_size=8,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    module = ColorizationModule(widths=[8, 16, 32], grid_size=18)
    quick_trainer(tmp_path, fast_dev_run=True).fit(module, dm)
    assert set(dm.class_names) <= {"forest", "glacier", "mountain", "sea"}
    assert bool(module.color_table.built)
