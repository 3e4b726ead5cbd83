"""Shard sets (scripts/make_shards.py) and StreamingShards, on a local disk and through a real S3
API on 127.0.0.1 (moto's standalone server), bad inputs included."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

pytest.importorskip("litdata")
boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from datamodules.folders import random_square_crop, to_tensor  # noqa: E402
from datamodules.streaming import StreamingShards, collate_photos  # noqa: E402
from lit_colorize.errors import ConfigError, DataError  # noqa: E402
from lit_colorize.shards import INDEX, MANIFEST, sample_key  # noqa: E402
from scripts.make_shards import main as make_shards  # noqa: E402
from tests.helpers import cli_env, console_script, toyshapes_config  # noqa: E402

NUM_PHOTOS = 49  # per class, 2 classes; 10 go to val, 88 train: whole batches of 4 on each of 2 ranks
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_photos(root: Path) -> Path:
    """Small colorful photos of varied aspect in two class folders, one unreadable, one gray."""
    rng = np.random.default_rng(0)
    for category in ("beach", "forest"):
        (root / category).mkdir(parents=True)
        for number in range(NUM_PHOTOS):
            height, width = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            base = rng.integers(0, 256, 3)
            pixels = np.clip(base + rng.integers(-60, 60, (height, width, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / category / f"{number:03d}.jpg", quality=95)
    (root / "beach" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    Image.new("RGB", (70, 50), (120, 120, 120)).save(root / "forest" / "gray.png")
    return root


@pytest.fixture(scope="module")
def shard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    photos = make_photos(root / "photos")
    assert make_shards(["--inputs", str(photos), "--output", str(root / "set"), "--short_side", "48",
                        "--val_fraction", "0.1", "--chunk_bytes", "40kB"]) == 0  # fmt: skip
    return root / "set"


def stored_items(folder: Path) -> list[dict]:
    from litdata import StreamingDataset

    dataset = StreamingDataset(str(folder))
    return [dataset[i] for i in range(len(dataset))]


def epoch_indices(datamodule: StreamingShards, loader: object = None) -> list[int]:
    """The sample indices of one epoch of ``loader`` (a new training loader by default)."""
    return [int(i) for batch in (loader or datamodule.train_dataloader()) for i in batch[2]]


# The shards command.


def test_shards_store_shrunk_jpeg_bytes_and_report_skipped_files(shard_root: Path, capsys: pytest.CaptureFixture) -> None:
    train, val = stored_items(shard_root / "train"), stored_items(shard_root / "val")
    assert len(train) + len(val) == 2 * NUM_PHOTOS and 0 < len(val) < len(train)
    assert not {sample_key(item) for item in train} & {sample_key(item) for item in val}  # the held-out split is its own set
    for item in train[:10]:
        assert bytes(item["jpeg"])[:2] == b"\xff\xd8"  # JPEG bytes, not pixels
        with Image.open(io.BytesIO(bytes(item["jpeg"]))) as image:
            with Image.open(sample_key(item)) as original:
                assert min(image.size) == min(48, min(original.size))
                assert abs(image.width / image.height - original.width / original.height) < 0.05  # aspect kept
    manifest = json.loads((shard_root / "train" / MANIFEST).read_text())
    assert manifest["classes"] == ["beach", "forest"]
    skipped = manifest["skipped"]
    assert skipped[str(shard_root.parent / "photos" / "forest" / "gray.png")] == "near-gray"
    assert "not a readable image" in skipped[str(shard_root.parent / "photos" / "beach" / "broken.jpg")]
    assert not list(shard_root.parent.glob(".*partial*"))


def test_shards_refuse_an_existing_set_and_an_interrupted_run_leaves_none(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photos = tmp_path / "photos" / "only"
    photos.mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(photos / "red.png")
    (photos / "bad.jpg").write_bytes(b"garbage")  # the val split gets the readable one or the bad one
    out = tmp_path / "set"
    assert make_shards(["--inputs", str(tmp_path / "photos"), "--output", str(out), "--val_fraction", "0.5"]) == 1
    assert "could be written" in capsys.readouterr().err
    assert not out.exists()  # the failed run left no shard set under the final name...
    assert (tmp_path / ".set.partial").exists()  # ...only its partial folder, which a rerun replaces
    Image.new("RGB", (40, 30), (30, 200, 30)).save(photos / "green.png")
    (photos / "bad.jpg").unlink()
    assert make_shards(["--inputs", str(tmp_path / "photos"), "--output", str(out), "--val_fraction", "0.5"]) == 0
    assert (out / "train" / INDEX).is_file() and not (tmp_path / ".set.partial").exists()
    assert make_shards(["--inputs", str(tmp_path / "photos"), "--output", str(out)]) == 1
    assert f"shard set {out} exists; pass --overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_shards_killed_midway_leave_no_set_and_a_rerun_writes_it_whole(shard_root: Path, tmp_path: Path) -> None:
    """SIGKILL the command while it writes chunks: nothing under the final name; the rerun
    (same command) writes the whole set, the same photos as an unbroken run."""
    photos = shard_root.parent / "photos"
    out = tmp_path / "set"
    command = [sys.executable, "scripts/make_shards.py", "--inputs", str(photos), "--output", str(out),
               "--short_side", "48", "--val_fraction", "0.1", "--chunk_bytes", "4kB"]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = tmp_path / ".set.partial" / "train"
    deadline = time.monotonic() + 120
    while len(list(partial.glob("*.bin"))) < 3 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    run.kill()
    assert run.wait() == -signal.SIGKILL, "the command ended before it could be killed midway"
    assert not out.exists() and list(partial.glob("*.bin"))  # killed while writing, nothing under the final name
    rerun = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert not (tmp_path / ".set.partial").exists()
    for split in ("train", "val"):
        assert [sample_key(i) for i in stored_items(out / split)] == [sample_key(i) for i in stored_items(shard_root / split)]


# Streaming from the local disk.


def test_local_epoch_sees_each_sample_once_shuffled_per_epoch_and_seeded(shard_root: Path) -> None:
    datamodule = StreamingShards(str(shard_root), image_size=32, batch_size=8, num_workers=0, seed=3)
    datamodule.setup("fit")
    count = len(datamodule.train_set)
    images, labels, _ = next(iter(datamodule.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 32, 32) and labels.dtype == torch.long
    loader = datamodule.train_dataloader()  # Lightning keeps one loader for the fit; each pass is an epoch
    first, second = epoch_indices(datamodule, loader), epoch_indices(datamodule, loader)
    assert sorted(first) == sorted(second) == list(range(count))
    assert first != second  # reshuffled each epoch
    again = StreamingShards(str(shard_root), image_size=32, batch_size=8, num_workers=0, seed=3)
    again.setup("fit")
    assert epoch_indices(again) == first  # same seed, same first epoch


def test_workers_see_disjoint_samples(shard_root: Path) -> None:
    datamodule = StreamingShards(str(shard_root), image_size=32, batch_size=4, num_workers=2)
    datamodule.setup("fit")
    seen = epoch_indices(datamodule)
    assert sorted(seen) == list(range(len(datamodule.train_set)))


def test_training_crop_is_the_folder_crop_of_the_stored_photo(shard_root: Path) -> None:
    """The same crop code as PhotoFolders, drawn from (seed, epoch, index): reproducible anywhere."""
    datamodule = StreamingShards(str(shard_root), image_size=24, batch_size=1, num_workers=0, seed=5)
    datamodule.setup("fit")
    images, _, index = next(iter(datamodule.train_dataloader()))
    stored = stored_items(shard_root / "train")[int(index[0])]
    with Image.open(io.BytesIO(bytes(stored["jpeg"]))) as photo:
        rng = np.random.default_rng([5, datamodule.train_set.current_epoch, int(index[0])])
        expected = to_tensor(random_square_crop(photo.convert("RGB"), 24, (0.5, 1.0), rng))
    assert torch.equal(images[0], expected)
    val_images, _, _ = next(iter(datamodule.val_dataloader()))
    assert val_images.shape[1:] == (3, 24, 24)


def test_stored_jpeg_is_decoded_at_the_smallest_scale_that_still_covers_the_crop() -> None:
    from lit_colorize.shards import decode_jpeg

    rng = np.random.default_rng(1)
    smooth = np.kron(rng.integers(0, 256, (64, 96, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # 768x512, 8 px blocks
    buffer = io.BytesIO()
    Image.fromarray(smooth).save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    sizes = {side: decode_jpeg(data, side).size for side in (None, 512, 300, 256, 129, 128, 64, 1)}
    assert sizes == {None: (768, 512), 512: (768, 512), 300: (768, 512), 256: (384, 256), 129: (384, 256),
                     128: (192, 128), 64: (96, 64), 1: (96, 64)}  # 1/2, 1/4, 1/8: never under the side asked  # fmt: skip
    halved = np.asarray(decode_jpeg(data, 256), dtype=float)
    oracle = smooth.reshape(256, 2, 384, 2, 3).mean(axis=(1, 3))  # a 2x2 box average of the pixels
    assert np.abs(halved - oracle).mean() < 2.0
    with pytest.raises(ValueError, match="not a readable image"):
        decode_jpeg(data[:200] + b"\x00" * 50, 256)


def test_damaged_photo_inside_a_chunk_is_skipped_and_reported(shard_root: Path, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    copy = tmp_path / "set"
    shutil.copytree(shard_root, copy)
    chunk = sorted((copy / "train").glob("*.bin"))[0]
    data = bytearray(chunk.read_bytes())
    start = data.find(b"\xff\xd8\xff")
    data[start : start + 40] = b"\x00" * 40  # the first photo's JPEG header zeroed, the chunk's size unchanged
    chunk.write_bytes(bytes(data))
    datamodule = StreamingShards(str(copy), image_size=16, batch_size=8, num_workers=0)
    datamodule.setup("fit")
    with caplog.at_level(logging.WARNING, logger="datamodules.streaming"):
        seen = epoch_indices(datamodule)
    assert len(seen) == len(datamodule.train_set) - 1 and len(set(seen)) == len(seen)  # the epoch went on
    assert any("skipping damaged photo" in r.message and str(copy / "train") in r.message for r in caplog.records)


def first_photos_counts(datamodule: StreamingShards, count: int, grid_size: int = 18) -> np.ndarray:
    """Per-bin pixel counts of the first ``count`` training photos of a fresh ``datamodule``, each
    read once: the oracle for the color table a bounded pass must build."""
    from lit_colorize.bins import ColorHistogram
    from lit_colorize.color import rgb_to_lab

    datamodule.setup("fit")
    histogram = ColorHistogram(grid_size)
    for index in range(count):
        histogram.update(rgb_to_lab(collate_photos([datamodule.train_set[index]])[0])[:, 1:])
    return histogram.counts.numpy()


def test_color_table_comes_from_the_first_color_sample_photos(shard_root: Path, tmp_path: Path) -> None:
    from callbacks import ColorTableBuilder
    from lit_colorize import ColorizationModule
    from tests.helpers import quick_trainer

    settings = {"image_size": 16, "batch_size": 8, "num_workers": 0, "seed": 2}
    module = ColorizationModule(widths=[8, 16, 32])
    datamodule = StreamingShards(str(shard_root), color_sample=20, **settings)
    quick_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0, callbacks=[ColorTableBuilder()]).fit(module, datamodule)
    expected = first_photos_counts(StreamingShards(str(shard_root), **settings), 20)
    assert expected.sum() == 20 * 16 * 16
    np.testing.assert_array_equal(module.color_table.counts.numpy(), expected)
    whole = StreamingShards(str(shard_root), color_sample=None, **settings)
    assert whole.color_sample is None
    whole.setup("fit")
    assert whole.color_sample == 88 and StreamingShards(str(shard_root), color_sample=500, **settings).color_sample == 500
    with pytest.raises(ConfigError, match="color_sample must be a number of photos >= 1"):
        StreamingShards(str(shard_root), color_sample=0)


def truncate_a_chunk(folder: Path) -> tuple[Path, int]:
    """Cut the second chunk of the set at ``folder`` to a third of its bytes, as an interrupted
    copy leaves it; the chunk and the number of photos it held (from ``index.json``)."""
    chunks = json.loads((folder / INDEX).read_text())["chunks"]
    chunk = folder / chunks[1]["filename"]
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 3])
    return chunk, chunks[1]["chunk_size"]


def keys_of(dataset: Any) -> list[str]:
    """The source path of every sample of a ShardSet, read as LitData stores it."""
    from litdata import StreamingDataset

    return [sample_key(StreamingDataset.__getitem__(dataset, i)) for i in range(len(dataset))]


def check_chunk_left_out(datamodule: StreamingShards, original: Path, set_name: str, chunk_name: str, lost: int,
                         problem: str, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The epoch goes on over every photo of the ``original`` set but the second chunk's, each
    once; one line names the set and the chunk."""
    whole = [sample_key(item) for item in stored_items(original)]
    with caplog.at_level(logging.WARNING, logger="datamodules.streaming"):
        datamodule.setup("fit")
    lines = [r.getMessage() for r in caplog.records if r.name == "datamodules.streaming" and chunk_name in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert f"chunk {chunk_name} of shard set {set_name} is {problem}" in lines[0]
    assert f"the other {len(whole) - lost} of {len(whole)} are read" in lines[0]
    assert datamodule.damaged_chunks == {f"{set_name}/{chunk_name}": lines[0].split(" is ", 1)[1].split(";")[0]}
    assert 0 < lost < len(whole) and len(datamodule.train_set) == len(whole) - lost
    start = sum(chunk["chunk_size"] for chunk in json.loads((original / INDEX).read_text())["chunks"][:1])
    assert keys_of(datamodule.train_set) == whole[:start] + whole[start + lost :]  # exactly that chunk's photos are out
    seen = epoch_indices(datamodule)
    assert sorted(seen) == list(range(len(whole) - lost))  # the rest of the epoch, each photo once


def test_truncated_local_chunk_is_left_out_and_reported_in_one_line(shard_root: Path, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    copy = tmp_path / "set"
    shutil.copytree(shard_root, copy)
    chunk, lost = truncate_a_chunk(copy / "train")
    datamodule = StreamingShards(str(copy), image_size=16, batch_size=8, num_workers=2)
    check_chunk_left_out(datamodule, shard_root / "train", str(copy / "train"), chunk.name, lost,
                         f"truncated or damaged: {chunk.stat().st_size} bytes, index.json says", caplog)  # fmt: skip


def test_chunk_with_a_damaged_header_is_left_out_and_reported_in_one_line(shard_root: Path, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The size is right but the item offsets are overwritten: LitData would raise inside a worker."""
    copy = tmp_path / "set"
    shutil.copytree(shard_root, copy)
    chunk_info = json.loads((copy / "train" / INDEX).read_text())["chunks"][1]
    chunk = copy / "train" / chunk_info["filename"]
    data = bytearray(chunk.read_bytes())
    data[8:16] = b"\xff" * 8  # the second and third item offsets
    chunk.write_bytes(bytes(data))
    datamodule = StreamingShards(str(copy), image_size=16, batch_size=8, num_workers=0)
    check_chunk_left_out(datamodule, shard_root / "train", str(copy / "train"), chunk.name, chunk_info["chunk_size"],
                         f"damaged: its item offsets do not fit {chunk_info['chunk_size']} items", caplog)  # fmt: skip


def test_missing_chunk_and_old_format_fail_in_one_line_naming_the_set(shard_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "set"
    shutil.copytree(shard_root, copy)
    missing = sorted((copy / "train").glob("*.bin"))[1]
    missing.unlink()
    with pytest.raises(DataError, match=f"shard set {copy / 'train'}: chunk {missing.name} is missing"):
        StreamingShards(str(copy)).setup("fit")
    manifest = json.loads((copy / "val" / MANIFEST).read_text())
    (copy / "val" / MANIFEST).write_text(json.dumps({**manifest, "version": 0}))
    with pytest.raises(DataError, match=f"shard set {copy / 'val'} is format lit-colorize-shards version 0.*rebuild"):
        StreamingShards(train=str(shard_root / "train"), val=str(copy / "val")).setup("fit")
    (copy / "val" / MANIFEST).unlink()  # what a set written before the manifest existed looks like
    with pytest.raises(DataError, match=f"shard set {copy / 'val'} has no {MANIFEST}"):
        StreamingShards(train=str(shard_root / "train"), val=str(copy / "val")).setup("fit")
    with pytest.raises(DataError, match=f"shard set {tmp_path / 'nowhere'}/train does not exist"):
        StreamingShards(str(tmp_path / "nowhere")).setup("fit")
    cut = tmp_path / "cut"
    shutil.copytree(shard_root, cut)
    for chunk in (cut / "val").glob("*.bin"):  # no whole chunk left: nothing to train or validate on
        chunk.write_bytes(chunk.read_bytes()[:50])
    with pytest.raises(DataError, match=f"shard set {cut / 'val'}: every chunk is truncated or damaged"):
        StreamingShards(str(cut)).setup("fit")


# Through a real S3 API on the loopback.


@pytest.fixture(scope="module")
def s3_store(shard_root: Path) -> Iterator[str]:
    """moto's standalone S3 server on a free port, the shard set uploaded to s3://shards/set."""
    saved = {key: os.environ.get(key) for key in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's line per request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="shards")
    for path in shard_root.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), "shards", f"set/{path.relative_to(shard_root).as_posix()}")
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_s3_stream_gives_the_local_epoch(shard_root: Path, s3_store: str, tmp_path: Path) -> None:
    local = StreamingShards(str(shard_root), image_size=32, batch_size=8, num_workers=0, seed=1)
    remote = StreamingShards("s3://shards/set", image_size=32, batch_size=8, num_workers=2, seed=1,
                             endpoint_url=s3_store, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    local.setup("fit")
    remote.setup("fit")
    assert len(remote.train_set) == len(local.train_set) and remote.class_names == ["beach", "forest"]
    seen = epoch_indices(remote)
    assert sorted(seen) == list(range(len(local.train_set)))
    remote_val = torch.cat([batch[0] for batch in remote.val_dataloader()])
    local_val = torch.cat([batch[0] for batch in local.val_dataloader()])
    assert torch.equal(remote_val, local_val)  # the same photos, the same pixels


def test_s3_wrong_uri_fails_in_one_line(s3_store: str) -> None:
    with pytest.raises(DataError, match="shard set s3://nobucket/set/train: no bucket 'nobucket'"):
        StreamingShards("s3://nobucket/set", endpoint_url=s3_store).setup("fit")
    with pytest.raises(DataError, match="shard set s3://shards/typo/train is empty or does not exist"):
        StreamingShards("s3://shards/typo", endpoint_url=s3_store).setup("fit")


def test_truncated_chunk_in_the_store_is_left_out_and_reported_in_one_line(
    shard_root: Path, s3_store: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy = tmp_path / "set"
    shutil.copytree(shard_root, copy)
    chunk, lost = truncate_a_chunk(copy / "train")
    client = boto3.client("s3", endpoint_url=s3_store)
    for path in copy.rglob("*"):
        if path.is_file():  # the truncated chunk uploaded as it is, as an interrupted sync leaves it
            client.upload_file(str(path), "shards", f"cut/{path.relative_to(copy).as_posix()}")
    datamodule = StreamingShards("s3://shards/cut", image_size=16, batch_size=8, num_workers=2, endpoint_url=s3_store,
                                 cache_dir=str(tmp_path / "cache"))  # fmt: skip
    check_chunk_left_out(datamodule, shard_root / "train", "s3://shards/cut/train", chunk.name, lost,
                         f"truncated or damaged: {chunk.stat().st_size} bytes, index.json says", caplog)  # fmt: skip


def test_s3_refused_credentials_fail_in_one_line(tmp_path: Path) -> None:
    """A second moto server with authentication on (its first request already checked): the
    store answers InvalidAccessKeyId for keys it does not know."""
    port = free_port()
    env = {**os.environ, **CREDENTIALS, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    code = f"from moto.server import ThreadedMotoServer as S; import time; S('127.0.0.1', {port}, verbose=False).start(); time.sleep(120)"
    server = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        with pytest.raises(DataError, match=r"shard set s3://shards/set/train: the store refused the credentials \(InvalidAccessKeyId\)"):
            StreamingShards("s3://shards/set", endpoint_url=f"http://127.0.0.1:{port}").setup("fit")
    finally:
        server.kill()
        server.wait()


# 2-process DDP (gloo, CPU) on the shards in the S3 store, through the console script.


class IndexedShards(StreamingShards):
    """StreamingShards that keeps the sample indices of the batch on its way to the model (the
    module turns batches into Lab on the device, so callbacks no longer see them)."""

    batch_indices: list[int] = []

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        self.batch_indices = [int(i) for i in batch[2]]
        return batch


class SampleLog(L.Callback):
    """Appends each rank's trained sample indices (``<epoch> <step> <indices>``) to
    ``samples.rank<r>.log`` beside ``folder``; with ``kill_at_step``, rank 0 SIGKILLs its whole
    process group at the start of that step, once, after ``last.ckpt`` holds the step before."""

    def __init__(self, folder: str, kill_at_step: int | None = None) -> None:
        self.folder, self.kill_at_step = Path(folder), kill_at_step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        marker = self.folder / "killed"
        if trainer.is_global_zero and trainer.global_step == self.kill_at_step and not marker.exists():
            marker.touch()
            os.killpg(os.getpgrp(), signal.SIGKILL)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        indices = " ".join(str(int(i)) for i in trainer.datamodule.batch_indices)
        with open(self.folder / f"samples.rank{trainer.global_rank}.log", "a") as log:
            log.write(f"{trainer.current_epoch} {trainer.global_step} {indices}\n")


def logged_samples(folder: Path) -> dict[int, list[int]]:
    """rank -> sample indices trained in epoch 0, in order."""
    found = {}
    for rank in (0, 1):
        path = folder / f"samples.rank{rank}.log"
        lines = [line.split() for line in path.read_text().splitlines()] if path.is_file() else []
        found[rank] = [int(i) for fields in lines if fields[0] == "0" for i in fields[2:]]
    return found


def streaming_config(path: Path, endpoint: str, kill_at_step: int | None) -> Path:
    config = yaml.safe_load(toyshapes_config(path, batch_size=4, last_every_n_train_steps=1, max_epochs=1).read_text())
    config["model"]["init_args"]["widths"] = [8, 16, 32]
    config["data"] = {"class_path": "tests.test_streaming.IndexedShards", "init_args": {
        "shards": "s3://shards/set", "image_size": 32, "batch_size": 4, "num_workers": 0, "seed": 0,
        "endpoint_url": endpoint, "cache_dir": str(path.parent / "cache"), "color_sample": 40}}  # fmt: skip
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if not c["class_path"].endswith("SampleGrid")]
    config["trainer"]["callbacks"].append({"class_path": "tests.test_streaming.SampleLog",
                                           "init_args": {"folder": str(path.parent), "kill_at_step": kill_at_step}})  # fmt: skip
    config["trainer"].update(logger=False, default_root_dir=str(path.parent), num_sanity_val_steps=0)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fit(config: Path, *extra: str) -> subprocess.CompletedProcess:
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
    return subprocess.run([console_script(), "fit", "--config", str(config), *ddp, *extra], cwd=config.parent,
                          env={**cli_env(), **CREDENTIALS}, capture_output=True, text=True, timeout=600,
                          start_new_session=True)  # fmt: skip


@pytest.mark.slow
def test_ddp_on_s3_sees_each_sample_once_and_resumes_after_sigkill_mid_epoch(shard_root: Path, s3_store: str,
                                                                            tmp_path: Path) -> None:  # fmt: skip
    expected = list(range(88))  # the train set of shard_root (LitData drops a rank's last partial batch)
    whole = tmp_path / "whole"
    whole.mkdir()
    done = fit(streaming_config(whole / "config.yaml", s3_store, None))
    assert done.returncode == 0, done.stderr[-4000:]
    seen = logged_samples(whole)
    assert sorted(seen[0] + seen[1]) == expected and not set(seen[0]) & set(seen[1])  # disjoint ranks, each once
    # the color table: the first color_sample (40) photos, shared out over the 2 ranks and summed
    state = torch.load(whole / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    counts = next(value for key, value in state.items() if key.endswith("color_table.counts"))
    single = first_photos_counts(StreamingShards(str(shard_root), image_size=32, num_workers=0, seed=0), 40)
    np.testing.assert_array_equal(counts.numpy(), single)

    killed = tmp_path / "killed"
    killed.mkdir()
    config = streaming_config(killed / "config.yaml", s3_store, kill_at_step=5)
    first = fit(config)
    assert first.returncode == -signal.SIGKILL and (killed / "checkpoints" / "last.ckpt").is_file(), first.stderr[-3000:]
    before = logged_samples(killed)
    assert len(before[0]) == len(before[1]) == 5 * 4
    resumed = fit(config, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    after = logged_samples(killed)
    union = after[0] + after[1]
    assert sorted(union) == expected, f"repeats or gaps: {sorted(union)}; before the kill {before}, after {after}"
    assert after[0][:20] == before[0] and after[0][20:] == seen[0][20:]  # it went on as the unbroken run did


def test_imagenet_config_and_sbatch_agree_on_4_nodes_of_8_gpus() -> None:
    from tests.helpers import parsed_config

    root = Path(__file__).resolve().parents[1]
    script = (root / "scripts" / "slurm" / "train_streaming.sbatch").read_text()
    directives = dict(line.split()[1].lstrip("-").split("=", 1) for line in script.splitlines()
                      if line.startswith("#SBATCH") and "=" in line)
    assert directives["nodes"] == "4" and directives["ntasks-per-node"] == directives["gpus-per-node"] == "8"
    config = parsed_config("fit", "--config", str(root / "configs" / "imagenet_streaming.yaml"), "--trainer",
                           str(root / "configs" / "trainer" / "slurm.yaml"), "--trainer.num_nodes", "4",
                           "--trainer.devices", "8", "--data.init_args.shards", "s3://bucket/shards")  # fmt: skip
    assert "--trainer.num_nodes 4" in script and "--trainer.devices 8" in script
    assert config["trainer"]["num_nodes"] == 4 and str(config["trainer"]["devices"]) == "8"
    assert config["data"]["class_path"] == "datamodules.StreamingShards"
    assert config["data"]["init_args"]["shards"] == "s3://bucket/shards"


@pytest.mark.slow
def test_color_sample_benchmark_small_run(shared_data: Path) -> None:
    """benchmarks/color_sample.py end to end on a few real photos: the whole set is 0 from itself,
    and a prefix's divergence is positive and no larger than that of a shorter prefix's."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "benchmarks.color_sample", "--root", str(shared_data / "landscape"),
                             "--images", "300", "--size", "16"], cwd=root, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.strip().endswith("%") and line.split()[0][0].isdigit()]
    assert [row[1] for row in rows][-1] == "100.0%" and float(rows[-1][2]) == 0.0 == float(rows[-1][3])
    divergences = [float(row[2]) for row in rows[:-1]]
    assert all(d > 0 for d in divergences) and divergences[0] >= divergences[-1]
