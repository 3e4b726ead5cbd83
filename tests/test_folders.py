"""PhotoFolders: per-root sampling weights, aspect-kept crops from the whole photo, held-out
lists, bad files found at setup, disjoint DDP shares, and a real (tiny) fit."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from PIL import Image

from datamodules import PhotoFolders, PhotoRoot
from datamodules.folders import PhotoSet, WeightedRootSampler
from lit_colorize import ColorizationModule
from lit_colorize.errors import ConfigError
from tests.helpers import quick_trainer


def color_photo(path: Path, seed: int, size: tuple[int, int] = (90, 60)) -> Path:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC).save(path)
    return path


def sampler(group_sizes: list[int], weights: list[float], num_samples: int, epoch: int = 0) -> WeightedRootSampler:
    offsets = np.cumsum([0, *group_sizes])
    groups = [list(range(offsets[i], offsets[i + 1])) for i in range(len(group_sizes))]
    return WeightedRootSampler(groups, weights, num_samples, seed=3, epoch=lambda: epoch)


def test_sampling_weights_over_10k_draws() -> None:
    draws = [index for index, _ in sampler([50, 500, 2000], [1.0, 1.0, 2.0], 10_000)]
    root = np.digitize(draws, [50, 550])  # 0, 1, 2: the root of each draw
    shares = np.bincount(root, minlength=3) / len(draws)
    assert np.allclose(shares, [0.25, 0.25, 0.5], atol=0.01)
    first = np.bincount(root[:1000], minlength=3) / 1000  # interleaved, not one root after another
    assert np.allclose(first, [0.25, 0.25, 0.5], atol=0.06)
    small = np.bincount(np.asarray(draws)[root == 0], minlength=50)
    assert small.min() == 50 and small.max() == 50  # the small root's 2,500 draws: each photo 50 times
    large = np.bincount(np.asarray(draws)[root == 2] - 550, minlength=2000)
    assert large.min() == 2 and large.max() == 3  # without replacement until used up


def test_sampler_is_seeded_per_epoch_and_ranks_get_disjoint_shares() -> None:
    one = list(sampler([40, 60], [1.0, 1.0], 100, epoch=0))
    assert one == list(sampler([40, 60], [1.0, 1.0], 100, epoch=0))
    assert one != list(sampler([40, 60], [1.0, 1.0], 100, epoch=1))
    shares = []
    for rank in range(2):  # how the Trainer wraps a custom sampler under DDP
        wrapped = DistributedSamplerWrapper(sampler([40, 60], [0.4, 0.6], 100), num_replicas=2, rank=rank, shuffle=False)
        shares.append([index for index, _ in wrapped])
    assert len(shares[0]) == len(shares[1]) == 50
    assert not set(shares[0]) & set(shares[1]) and set(shares[0]) | set(shares[1]) == set(range(100))


def gradient_photo(path: Path, width: int = 256, height: int = 64) -> None:
    """Red grows with x by 1 per pixel, green with y by 4 per pixel: a crop's red and green
    ranges tell how much of the photo it spans across and down."""
    xx, yy = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([xx, yy * 4, np.full_like(xx, 128)], axis=-1).clip(0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def test_crops_keep_the_aspect_and_reach_the_whole_photo(tmp_path: Path) -> None:
    gradient_photo(tmp_path / "wide.png")
    photos = PhotoSet([tmp_path / "wide.png"], [0], image_size=32, crop_scale=(0.5, 1.0))
    reds = []
    for seed in range(120):
        crop, _ = photos[(0, seed)]
        red, green = crop[0].float(), crop[1].float()
        red_span, green_span = red.max() - red.min(), green.max() - green.min()
        assert green_span / red_span == pytest.approx(4.0, rel=0.15)  # square in the photo: not stretched
        assert 0.5 * 64 * 4 * 0.85 <= green_span <= 64 * 4  # a side of 50-100% of the shorter side
        reds += [float(red.min()), float(red.max())]
    assert min(reds) < 15 and max(reds) > 240  # from the left end to the right end, not a center crop
    assert torch.equal(photos[(0, 7)][0], photos[(0, 7)][0])  # a draw is its seed's, in any worker
    center, _ = PhotoSet([tmp_path / "wide.png"], [0], image_size=32, crop_scale=None)[0]
    assert 96 <= float(center[0].float().min()) and float(center[0].float().max()) <= 160  # validation: the centred square


def test_held_out_lists_bad_files_and_gray_photos(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    corpus = tmp_path / "corpus"
    for i in range(12):
        color_photo(corpus / "people" / f"p{i}.png", i)
        color_photo(corpus / "street" / f"s{i}.png", 100 + i)
    (corpus / "street" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    Image.new("RGB", (40, 30), (120, 120, 120)).save(corpus / "people" / "gray.png")
    held = tmp_path / "heldout.txt"
    held.write_text("# held out\npeople/p0.png\nstreet/s0.png\nstreet/s1.png\n")
    root = PhotoRoot(str(corpus), held_out=str(held))
    with caplog.at_level(logging.WARNING):
        datamodule = PhotoFolders(roots=[root], image_size=16, cache_dir=str(tmp_path / "cache"))
        datamodule.setup("fit")
    assert datamodule.val_set is not None and datamodule.train_set is not None
    val = {p.relative_to(corpus).as_posix() for p in datamodule.val_paths()}
    train = {p.relative_to(corpus).as_posix() for p in datamodule.train_set.paths}
    assert val == {"people/p0.png", "street/s0.png", "street/s1.png"}
    assert not val & train and len(train) == 21  # 24 photos - 3 held out; broken and gray left out
    assert "street/broken.jpg" not in train and "people/gray.png" not in train
    assert any("broken.jpg" in record.getMessage() and "unreadable" in record.getMessage() for record in caplog.records)
    assert datamodule.class_names == ["people", "street"]
    assert datamodule.val_classes().tolist() == [0, 1, 1]
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (21, 3, 16, 16) and labels.shape == (21,)
    again = PhotoFolders(roots=[root], image_size=16, cache_dir=str(tmp_path / "cache"))
    again.setup("fit")  # from the scan cache: same split
    assert {p.relative_to(corpus).as_posix() for p in again.train_set.paths} == train


def test_prefix_splits_one_corpus_into_weighted_roots(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for i in range(10):
        color_photo(corpus / "a" / "objects" / f"{i}.png", i)
    for i in range(30):
        color_photo(corpus / "b" / "nature" / f"{i}.png", 50 + i)
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"a/objects/{i}.png\n" for i in range(10)) + "".join(f"b/nature/{i}.png\n" for i in range(30)))
    roots = [PhotoRoot(str(corpus), weight=3.0, files=str(listing), prefix="a/"),
             PhotoRoot(str(corpus), weight=1.0, files=str(listing), prefix="b/")]  # fmt: skip
    datamodule = PhotoFolders(roots=roots, image_size=16, samples_per_epoch=400, cache_dir=str(tmp_path / "cache"))
    datamodule.setup("fit")
    assert datamodule.train_set is not None
    drawn = [datamodule.train_set.paths[i].parent.name for i, _ in datamodule.train_sampler()]
    assert drawn.count("objects") == 300 and drawn.count("nature") == 100
    tuning = tmp_path / "tuning.txt"
    tuning.write_text("# kept apart\na/objects/0.png\nb/nature/5.png\n")
    kept_apart = [PhotoRoot(**{**vars(root), "exclude": str(tuning)}) for root in roots]
    datamodule = PhotoFolders(roots=kept_apart, image_size=16, cache_dir=str(tmp_path / "cache"))
    datamodule.setup("fit")
    seen = {p.relative_to(corpus).as_posix() for p in [*datamodule.train_set.paths, *datamodule.val_paths()]}
    assert len(seen) == 38 and not seen & {"a/objects/0.png", "b/nature/5.png"}  # neither trained nor validated on
    with pytest.raises(ConfigError, match="cannot read the file list"):
        PhotoFolders(roots=[PhotoRoot(str(corpus), files=str(tmp_path / "nope.txt"))], cache_dir=str(tmp_path / "c")).setup()
    with pytest.raises(ConfigError, match="does not exist"):
        PhotoFolders(roots=[PhotoRoot(str(tmp_path / "missing"))]).setup()


def test_a_tiny_fit_on_photo_folders(tmp_path: Path) -> None:
    for i in range(24):
        color_photo(tmp_path / "photos" / "things" / f"{i}.png", i, size=(48, 40))
    datamodule = PhotoFolders(roots=[{"path": str(tmp_path / "photos")}], image_size=16, batch_size=8, val_fraction=0.25,
                              cache_dir=str(tmp_path / "cache"))  # fmt: skip
    module = ColorizationModule(grid_size=6, widths=(8, 16))
    trainer = quick_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(module, datamodule)
    assert trainer.global_step == 2
    assert datamodule.hparams.roots == [{"path": str(tmp_path / "photos"), "weight": 1.0, "files": None, "held_out": None, "prefix": "", "exclude": None}]
