"""Landscape loader throughput: images/s reaching the training step, with and without the cache.

Why: the thesis decoded JPEGs (and wrote five augmented copies to disk); Landscape decodes
each photo once into a uint8 memory-mapped cache and augments on the device. This prints,
side by side in one run, the images/s of

  (a) the cached DataModule: memmap -> DataLoader -> device augmentation -> Lab + bins;
  (b) decoding every photo on every access (Pillow + resize/crop in the Dataset), then the
      same device steps;

and the one-off cost of building the cache. Then (issue 29) the folder DataModule against shard
sets on the local disk and through an S3 server on the loopback: each loader's images/s alone,
interleaved, and its share of a training step that does the rest on the device. It also times
the two decoders of ``lit_colorize.imageio`` on the same photos, interleaved: torchvision.io
(what ``load_rgb`` uses for JPEG/PNG/WebP/GIF) against Pillow alone.

    python -m benchmarks.loader                      # 1,024 photos of ../shared/data/landscape
    python -m benchmarks.loader --images 256 --epochs 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import SHARED_DATA, machine_line, timed
from datamodules.landscape import Landscape, find_images, resize_and_crop
from lit_colorize import imageio
from lit_colorize.batches import images_of
from lit_colorize.imageio import load_rgb
from lit_colorize.module import ColorizationModule


class DecodeEveryTime(Dataset):
    """The uncached path: decode and resize on each access."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        return resize_and_crop(load_rgb(self.paths[index]), self.size)


def drain(loader: DataLoader, module: ColorizationModule, augment: torch.nn.Module, epochs: int) -> float:
    """Images/s through loader -> augmentation -> Lab + bins, over ``epochs`` passes."""

    def passes() -> int:
        count = 0
        for _ in range(epochs):
            for batch in loader:
                images = batch[0] if isinstance(batch, (list, tuple)) else batch
                module.prepare_batch(augment(images.float().div(255)).clamp(0, 1))
                count += len(images)
        return count

    seconds, count = timed(passes)
    return count / seconds


def decode_rates(paths: list[Path], rounds: int = 3) -> dict[str, float]:
    """Megapixels/s of ``load_rgb`` with torchvision.io and with Pillow only, best of ``rounds``
    interleaved passes (the first pass also warms the page cache for both)."""
    best = {"torchvision.io": 0.0, "Pillow": 0.0}
    default = imageio.TORCHVISION_DECODES
    try:
        for _ in range(rounds):
            for name, use_torchvision in (("torchvision.io", default), ("Pillow", False)):
                imageio.TORCHVISION_DECODES = use_torchvision
                seconds, pixels = timed(lambda: sum(load_rgb(path)[0].numel() for path in paths))
                best[name] = max(best[name], pixels / 1e6 / seconds)
    finally:
        imageio.TORCHVISION_DECODES = default
    return best


def step_seconds(module: ColorizationModule, augment: torch.nn.Module, images: Tensor, rounds: int = 3) -> float:
    """Seconds of one training step of ``module`` as the trainer runs it on the device, best of
    ``rounds``: the batch augmentation, Lab and bins (``on_after_batch_transfer``), forward,
    loss and backward, from a uint8 batch that the loader handed over."""

    def step() -> None:
        module.compute_loss(module.prepare_batch(augment(images.float().div(255)).clamp(0, 1))).loss.backward()

    step()  # warm-up
    return min(timed(step)[0] for _ in range(rounds))


class OneThread:
    """A loader iterated with torch at one intra-op thread, as in a loader worker process: with
    0 workers, torch ops in the loader share the training process's threads."""

    def __init__(self, loader: Iterable) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield from self.loader
        finally:
            torch.set_num_threads(threads)


def loader_rates(loaders: dict[str, Iterable], rounds: int) -> dict[str, float]:
    """Images/s of each loader alone (its uint8 batches, nothing done with them), over ``rounds``
    epochs each, interleaved round by round: a background load that comes and goes falls on
    every row alike instead of on whichever ran while it lasted."""
    seconds, images = dict.fromkeys(loaders, 0.0), dict.fromkeys(loaders, 0)
    for _ in range(rounds):
        for name, loader in loaders.items():
            took, count = timed(lambda: sum(len(images_of(batch)) for batch in loader))  # noqa: B023 - called at once
            seconds[name] += took
            images[name] += count
    return {name: images[name] / seconds[name] for name in loaders}


def s3_server() -> tuple[object, str] | None:
    """moto's standalone S3 server on a free loopback port (None when moto is not installed)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        return None
    import logging
    import os
    import socket

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's line per request
    os.environ.update({key: os.environ.get(key, "bench") for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def upload(folder: Path, endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"set/{path.relative_to(folder).as_posix()}")


FOLDERS_ONE_THREAD = "PhotoFolders, torch at 1 thread"


def streaming_rows(paths: list[Path], root: Path, args: argparse.Namespace, module: ColorizationModule) -> None:
    """Issue 29: PhotoFolders against StreamingShards on the local disk and through S3 on the
    loopback, images/s and the data side's share of a training step at ``args.size``."""
    from datamodules.folders import PhotoFolders, PhotoRoot
    from datamodules.streaming import StreamingShards
    from lit_colorize.shards import write_shards

    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        listing = work_dir / "files.txt"
        listing.write_text("".join(f"{p.relative_to(root)}\n" for p in paths))
        absolute = work_dir / "absolute.txt"
        absolute.write_text("".join(f"{p.resolve()}\n" for p in paths))
        build, _ = timed(lambda: write_shards([absolute], work_dir / "shards", short_side=2 * args.size, val_fraction=0.01,
                                              gray_threshold=None, chunk_bytes="8MB"))  # fmt: skip
        common = {"image_size": args.size, "batch_size": args.batch_size, "num_workers": args.workers}
        folders = PhotoFolders(roots=[PhotoRoot(str(root), files=str(listing))], val_fraction=0.01, drop_gray=False,
                               cache_dir=str(work_dir / "cache"), **common)  # fmt: skip
        local = StreamingShards(str(work_dir / "shards"), **common)
        loaders: dict[str, object] = {"PhotoFolders (decode every draw)": folders, "shards, local disk": local}
        server = s3_server()
        if server is not None:
            upload(work_dir / "shards", server[1], "bench")
            loaders["shards, S3 on loopback (moto)"] = StreamingShards(
                "s3://bench/set", endpoint_url=server[1], cache_dir=str(work_dir / "s3cache"), **common
            )
        for datamodule in loaders.values():
            datamodule.setup("fit")
        # one loader each for the whole run, as Lightning keeps it: each pass is an epoch
        built = {name: dm.train_dataloader() for name, dm in loaders.items()}
        built[FOLDERS_ONE_THREAD] = OneThread(folders.train_dataloader())
        rates = loader_rates(built, args.epochs)
        if server is not None:
            server[0].stop()
    images = torch.randint(0, 256, (args.batch_size, 3, args.size, args.size), dtype=torch.uint8)
    step = step_seconds(module, local.train_augmentation, images)
    print(f"streaming (issue 29): shards built in {build:.1f} s ({len(paths) / build:.0f} images/s); loaders alone, "
          f"workers {args.workers}, {args.epochs} epochs each, interleaved; a training step of the default model on "
          f"the device (augmentation, Lab and bins, forward, backward), batch {args.batch_size} at {args.size} px: "
          f"{step * 1000:.0f} ms")  # fmt: skip
    print(f"{'loader':<34}{'images/s':>10}{'ms a batch':>12}{'data share of a step':>23}")
    for name, rate in rates.items():
        data = args.batch_size / rate
        print(f"{name:<34}{rate:>10.0f}{data * 1000:>12.0f}{data / (data + step):>22.1%}")
    if server is None:
        print("shards, S3 on loopback: moto is not installed (pip install -e .[dev]); row left out")
    else:
        first, local_rate, s3_rate = (rates[name] for name in loaders)
        print(f"local shards / PhotoFolders: {local_rate / first:.2f}x (/ its 1-thread row: "
              f"{local_rate / rates[FOLDERS_ONE_THREAD]:.2f}x); S3 / local shards: {s3_rate / local_rate:.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(SHARED_DATA / "landscape"))
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="loader workers of the streaming rows")
    parser.add_argument("--no-streaming", action="store_true", help="leave out the streaming rows (issue 29)")
    parser.add_argument("--streaming-only", action="store_true", help="only the streaming rows (issue 29)")
    parser.add_argument("--large", default=str(SHARED_DATA / "photos" / "large"),
                        help="folder of large photos for the decoder comparison (skipped when absent)")  # fmt: skip
    args = parser.parse_args()
    root = Path(args.root)
    if not root.is_dir():
        sys.exit(f"photo folder {root} not found: pass --root")
    paths = [p for p, _ in find_images(root)]
    paths = [paths[i] for i in sorted(np.random.default_rng(0).permutation(len(paths))[: args.images])]

    print("lit-colorize Landscape loader throughput")
    print(machine_line(torch.device("cpu")))
    print(f"settings: {len(paths)} photos from {root}, {args.size}x{args.size}, batch {args.batch_size}, {args.epochs} epochs, "
          f"workers 0 (streaming rows: {args.workers})")  # fmt: skip
    module = ColorizationModule(grid_size=18)
    if args.streaming_only:
        streaming_rows(paths, root, args, module)
        return
    with tempfile.TemporaryDirectory() as cache_dir:
        dm = Landscape(roots=[str(root)], image_size=args.size, max_images=args.images, val_fraction=0.01,
                       batch_size=args.batch_size, cache_dir=cache_dir, drop_gray=False)  # fmt: skip
        build, _ = timed(dm.setup)
        cached = drain(dm.train_dataloader(), module, dm.train_augmentation, args.epochs)
        uncached_loader = DataLoader(DecodeEveryTime(paths, args.size), batch_size=args.batch_size, shuffle=True)
        uncached = drain(uncached_loader, module, dm.train_augmentation, args.epochs)
    print(f"cache build (one-off): {build:.1f} s for {len(paths)} photos ({len(paths) / build:.0f} images/s)")
    print(f"{'loader':<34}{'images/s':>10}")
    print(f"{'(a) cached (memmap)':<34}{cached:>10.0f}")
    print(f"{'(b) decode every access':<34}{uncached:>10.0f}")
    print(f"ratio a/b: {cached / uncached:.1f}x")
    if not args.no_streaming:
        streaming_rows(paths, root, args, module)
    if not imageio.TORCHVISION_DECODES:
        print("decoders: torchvision.io has no image codecs here; every file goes through Pillow")
        return
    print(f"{'decoder (megapixels/s)':<34}{'torchvision.io':>16}{'Pillow':>10}{'ratio':>8}")
    large = sorted(Path(args.large).glob("*")) if Path(args.large).is_dir() else []
    for label, group in ((f"{len(paths)} landscape photos", paths), (f"{len(large)} large photos", large)):
        if group:
            rates = decode_rates(group)
            ratio = rates["torchvision.io"] / rates["Pillow"]
            print(f"{label:<34}{rates['torchvision.io']:>16.1f}{rates['Pillow']:>10.1f}{ratio:>7.2f}x")


if __name__ == "__main__":
    main()
