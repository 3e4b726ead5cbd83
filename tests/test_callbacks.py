"""ColorTableBuilder and SampleGrid inside real (tiny) fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from skimage.color import rgb2lab
from PIL import Image

from callbacks import ColorTableBuilder, SampleGrid
from callbacks.sample_grid import spread_indices
from lit_colorize import ColorizationModule
from tests.helpers import quick_trainer, tiny_toyshapes
from tests.test_bins import np_table


def test_table_built_from_training_data_matches_numpy(tmp_path: Path) -> None:
    datamodule = tiny_toyshapes()
    module = ColorizationModule(grid_size=18)
    quick_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(module, datamodule)
    # Oracle: skimage Lab of every training image (flips do not change colors), NumPy table.
    images = datamodule.train_images.permute(0, 2, 3, 1).numpy()
    ab = rgb2lab(images / 255.0)[..., 1:].reshape(-1, 2)
    counts, mean, mode = np_table(ab[:, 0], ab[:, 1], 18)
    np.testing.assert_array_equal(module.color_table.counts.numpy(), counts)
    np.testing.assert_allclose(module.color_table.mean_ab.numpy(), mean, atol=1e-3)
    np.testing.assert_array_equal(module.color_table.mode_ab.numpy(), mode)


def test_max_batches_bounds_the_pass(tmp_path: Path) -> None:
    module = ColorizationModule()
    trainer = quick_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0, callbacks=[ColorTableBuilder(max_batches=2)])
    trainer.fit(module, tiny_toyshapes(batch_size=16))
    assert module.color_table.counts.sum().item() == 2 * 16 * 32 * 32


def test_existing_table_is_kept(tmp_path: Path) -> None:
    module = ColorizationModule(grid_size=6)
    module.color_table.counts.fill_(7.0)
    module.color_table.built.fill_(True)
    quick_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(module, tiny_toyshapes())
    assert torch.all(module.color_table.counts == 7.0)


def test_regression_head_needs_no_table(tmp_path: Path) -> None:
    module = ColorizationModule(head="regression")
    quick_trainer(tmp_path, limit_train_batches=1, limit_val_batches=1).fit(module, tiny_toyshapes())
    assert module.color_table is None


def test_bad_max_batches_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_batches"):
        ColorTableBuilder(max_batches=0)


def test_sample_grid_writes_gray_original_and_temperatures(tmp_path: Path) -> None:
    grid = SampleGrid(num_images=3, temperatures=[0.0, 0.8, 1.0], min_tile_size=64)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "run" / "checkpoints")
    trainer = quick_trainer(
        tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=2, callbacks=[ColorTableBuilder(), grid, checkpoint]
    )
    datamodule = tiny_toyshapes(batch_size=2)
    trainer.fit(ColorizationModule(), datamodule)
    files = sorted((tmp_path / "run" / "samples").glob("*.png"))
    assert [f.name for f in files] == ["epoch=000-step=000001.png", "epoch=001-step=000002.png"]
    image = torch.from_numpy(np.array(Image.open(files[-1]))).permute(2, 0, 1)
    tile, pad = 64, 2  # 32 px upscaled x2
    assert image.shape == (3, pad + 3 * (tile + pad), pad + 5 * (tile + pad))
    # Column 2 holds the originals, spread over the 64 validation images: 0, 32 and 63, upscaled.
    for row, index in enumerate([0, 32, 63]):
        original = datamodule.val_images[index].repeat_interleave(2, -1).repeat_interleave(2, -2)
        top = pad + row * (tile + pad)
        assert torch.equal(image[:, top : top + tile, pad + tile + pad : pad + 2 * tile + pad], original), row
    # Column 1 is gray.
    gray = image[:, pad : pad + tile, pad : pad + tile].int()
    assert (gray.max(0).values - gray.min(0).values).max() <= 1
    assert grid.columns == ["gray", "original", "T=0", "T=0.8", "T=1"]


def test_sample_images_are_spread_over_the_set_and_over_its_classes() -> None:
    assert spread_indices(3, 10) == [0, 4, 9]  # linspace 0, 4.5, 9 (round half to even)
    assert spread_indices(5, 3) == [0, 1, 2]  # never more than the set holds
    # Hand-checked: classes a (0-3), b (4-5), c (6); quotas a 2, b 2, c 1; a, b, c in turn.
    classes = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    assert spread_indices(5, 7, classes) == [0, 4, 6, 3, 5]
    # A sorted set of 4 classes of 100: the first 8 images would all be class 0.
    sorted_classes = torch.arange(4).repeat_interleave(100)
    picked = spread_indices(8, 400, sorted_classes)
    assert sorted(sorted_classes[picked].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3] and len(set(picked)) == 8
