"""CIFAR100Subset on archives built here in both exact official layouts."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.cifar import THESIS_CLASSES, CIFAR100Subset, load_plain_pickle, read_cifar100
from lit_colorize import ColorizationModule
from tests.helpers import quick_trainer

NAMES = sorted([*THESIS_CLASSES, *(f"filler_{i:02d}" for i in range(100 - len(THESIS_CLASSES)))])
PER_CLASS = {"train": 3, "test": 2}


def make_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Every class PER_CLASS times; each image's first pixel encodes (class, copy) to check order."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = np.repeat(np.arange(100), PER_CLASS[split])
    rng.shuffle(labels)
    images = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    images[:, 0, 0, 0] = labels
    return images, labels


def write_python_layout(root: Path, as_tar: bool) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    meta = {b"fine_label_names": [n.encode() for n in NAMES], b"coarse_label_names": [b"c%d" % i for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    for split in ("train", "test"):
        images, labels = make_split(split)
        batch = {
            b"filenames": [b"img_%d.png" % i for i in range(len(labels))],
            b"batch_label": split.encode(),
            b"fine_labels": labels.tolist(),
            b"coarse_labels": (labels // 5).tolist(),
            b"data": images.reshape(len(labels), -1),
        }
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
    if as_tar:
        _to_tar(root, folder)


def write_binary_layout(root: Path, as_tar: bool) -> None:
    folder = root / "cifar-100-binary"
    folder.mkdir(parents=True)
    (folder / "fine_label_names.txt").write_text("\n".join(NAMES) + "\n")
    (folder / "coarse_label_names.txt").write_text("\n".join(f"c{i}" for i in range(20)) + "\n")
    for split in ("train", "test"):
        images, labels = make_split(split)
        records = np.concatenate([(labels // 5)[:, None], labels[:, None], images.reshape(len(labels), -1)], axis=1)
        (folder / f"{split}.bin").write_bytes(records.astype(np.uint8).tobytes())
    if as_tar:
        _to_tar(root, folder)


def _to_tar(root: Path, folder: Path) -> None:
    with tarfile.open(root / f"{folder.name}.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()


@pytest.mark.parametrize("as_tar", [False, True], ids=["folder", "tar.gz"])
@pytest.mark.parametrize("layout", ["python", "binary"])
def test_reads_both_official_layouts(tmp_path: Path, layout: str, as_tar: bool) -> None:
    (write_python_layout if layout == "python" else write_binary_layout)(tmp_path, as_tar)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # our files are not the official ones
        for split in ("train", "test"):
            images, labels, names = read_cifar100(tmp_path, split)
            expected_images, expected_labels = make_split(split)
            assert names == NAMES
            np.testing.assert_array_equal(images, expected_images)
            np.testing.assert_array_equal(labels, expected_labels)


def test_the_class_filter_really_applies(tmp_path: Path) -> None:
    write_python_layout(tmp_path, as_tar=False)
    dm = CIFAR100Subset(root=str(tmp_path))
    with pytest.warns(UserWarning, match="official CIFAR-100 checksum"):
        dm.setup()
    assert len(dm.train_set) == 12 * PER_CLASS["train"] and len(dm.val_set) == 12 * PER_CLASS["test"]
    for dataset in (dm.train_set, dm.val_set):
        original = dataset.images[:, 0, 0, 0].long()  # the full-set class index written into the image
        assert {NAMES[i] for i in original.tolist()} == set(THESIS_CLASSES)
        assert [THESIS_CLASSES[i] for i in dataset.labels.tolist()] == [NAMES[i] for i in original.tolist()]
    assert torch.equal(dm.val_classes(), torch.stack([label for _, label in dm.val_set]))  # for the sample grid
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)


def test_other_classes_can_be_chosen(tmp_path: Path) -> None:
    write_binary_layout(tmp_path, as_tar=True)
    dm = CIFAR100Subset(root=str(tmp_path), classes=["sea", "filler_03"])
    with pytest.warns(UserWarning, match="official CIFAR-100 checksum"):
        dm.setup()
    assert sorted(dm.train_set.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="unknown CIFAR-100 fine classes"), pytest.warns(UserWarning, match="checksum"):
        CIFAR100Subset(root=str(tmp_path), classes=["unicorn"]).setup()


def test_restricted_unpickler_refuses_code() -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_plain_pickle(pickle.dumps({b"data": Exploit()}, protocol=2), "evil/meta")
    plain = {b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), b"labels": [1, 2]}
    loaded = load_plain_pickle(pickle.dumps(plain, protocol=2), "ok")
    np.testing.assert_array_equal(loaded[b"data"], plain[b"data"])


def test_missing_data_names_the_files_and_never_downloads(tmp_path: Path) -> None:
    dm = CIFAR100Subset(root=str(tmp_path / "nowhere"))
    assert dm.hparams.download is False
    dm.prepare_data()  # does nothing without download
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz.*download: true"):
        dm.setup()


def test_truncated_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    write_binary_layout(tmp_path, as_tar=False)
    path = tmp_path / "cifar-100-binary" / "train.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="train.bin is not a whole number"):
        read_cifar100(tmp_path, "train")


def test_fit_smoke_with_device_augmentation(tmp_path: Path) -> None:
    write_binary_layout(tmp_path, as_tar=False)
    dm = CIFAR100Subset(root=str(tmp_path), batch_size=8)
    module = ColorizationModule(grid_size=18)
    seen = {}
    original = module.prepare_batch

    def spy(images: torch.Tensor) -> dict:
        seen.setdefault("dtype", images.dtype)
        return original(images)

    module.prepare_batch = spy
    quick_trainer(tmp_path, fast_dev_run=True).fit(module, dm)
    assert seen["dtype"] == torch.float32  # the training batch went through the augmentation
    batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    out = dm.train_augmentation(batch.float() / 255)
    assert out.shape == (4, 3, 32, 32) and out.device == batch.device
