"""ToyShapes: the thesis's toy set, deterministic and made of the right pieces."""

from __future__ import annotations

import numpy as np
import torch

from datamodules.toyshapes import PALETTES, ToyShapes, make_toy_shapes


def test_default_split_sizes_and_batches() -> None:
    dm = ToyShapes()
    dm.setup("fit")
    assert dm.train_images.shape == (2664, 3, 32, 32)
    assert dm.val_images.shape == (324, 3, 32, 32)
    batch = next(iter(dm.train_dataloader()))
    assert batch.dtype == torch.uint8 and batch.shape == (64, 3, 32, 32)


def test_generation_is_deterministic_per_seed() -> None:
    np.testing.assert_array_equal(make_toy_shapes(20, seed=(3, 0)), make_toy_shapes(20, seed=(3, 0)))
    assert not np.array_equal(make_toy_shapes(20, seed=(3, 0)), make_toy_shapes(20, seed=(4, 0)))
    a, b = ToyShapes(num_train=10, num_val=5, seed=1), ToyShapes(num_train=30, num_val=5, seed=1)
    a.setup(), b.setup()
    assert torch.equal(a.val_images, b.val_images), "the validation set must not depend on num_train"
    assert not torch.equal(a.val_images, a.train_images[:5])


def test_images_hold_black_and_one_palette_color_per_shape() -> None:
    images = make_toy_shapes(200, seed=(0, 0)).transpose(0, 2, 3, 1)
    allowed = {(0, 0, 0)} | {color for palette in PALETTES.values() for color in palette}
    for image in images:
        colors = {tuple(int(c) for c in pixel) for pixel in image.reshape(-1, 3)}
        assert colors <= allowed
        assert (0, 0, 0) in colors
        # All three shapes are whole and visible: one color of each palette, no overlap.
        visible = [name for name, palette in PALETTES.items() if colors & set(palette)]
        assert len(visible) == 3
    # Over the set, every color of every palette occurs.
    all_colors = {tuple(int(c) for c in p) for p in images.reshape(-1, 3)}
    assert allowed <= all_colors


def test_the_nine_colors_differ_in_lightness_and_bin() -> None:
    from skimage.color import rgb2lab

    colors = np.array([c for palette in PALETTES.values() for c in palette], dtype=float)
    lab = rgb2lab(colors[None] / 255)[0]
    assert np.diff(np.sort(lab[:, 0])).min() > 6  # gray level alone separates them
    grid_index = np.floor((lab[:, 1:] + 128) / 255 * 18).astype(int)
    assert len({tuple(i) for i in grid_index}) == 9  # and each has a 324-bin of its own


def test_training_flip_is_a_device_augmentation_of_training_batches_only() -> None:
    dm = ToyShapes(num_train=64, num_val=64, batch_size=64, flip_p=1.0)
    dm.setup()
    assert torch.equal(next(iter(dm.val_dataloader())), dm.val_images)  # loaders only move bytes
    assert torch.equal(dm.train_set[0], dm.train_images[0])
    rgb = dm.train_images.float() / 255
    assert torch.equal(dm.train_augmentation(rgb), rgb.flip(-1))  # p=1: every image mirrored
    halves = ToyShapes(flip_p=0.5).train_augmentation(rgb.repeat(8, 1, 1, 1))
    mirrored = (halves == rgb.repeat(8, 1, 1, 1).flip(-1)).flatten(1).all(dim=1).float().mean().item()
    assert 0.35 < mirrored < 0.65  # 512 draws of p=0.5 (symmetric images count as both)
    assert ToyShapes(flip_p=0.0).train_augmentation is None
