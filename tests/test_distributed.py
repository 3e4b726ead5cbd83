"""DDP with 2 CPU processes (gloo), launched through the console script as a user would."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import ToyShapes
from lit_colorize import ColorHistogram, Colorizer, ColorTable
from lit_colorize.color import rgb_to_lab
from tests.helpers import cli_env, console_script, toyshapes_config

pytestmark = pytest.mark.slow  # DDP with 2 CPU processes

DDP = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
NUM_TRAIN = 65  # odd: DistributedSampler repeats one image to even out the two shards


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([console_script(), *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"lit-colorize {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


@pytest.fixture(scope="module")
def ddp_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One epoch on ToyShapes by 2 processes; returns (working folder, run folder)."""
    root = tmp_path_factory.mktemp("ddp")
    config = toyshapes_config(root / "config.yaml", num_train=NUM_TRAIN, num_val=32, batch_size=8, max_epochs=1)
    run("fit", "--config", str(config), *DDP, cwd=root)
    (run_dir,) = [p for p in (root / "logs" / "lit-colorize").iterdir() if p.is_dir()]
    return root, run_dir


def single_process_table(grid_size: int = 18) -> ColorTable:
    """The oracle: one process, every training image exactly once."""
    datamodule = ToyShapes(num_train=NUM_TRAIN, num_val=32, batch_size=8, seed=0)
    datamodule.setup("fit")
    histogram = ColorHistogram(grid_size)
    histogram.update(rgb_to_lab(datamodule.train_images)[:, 1:])
    table = ColorTable(grid_size)
    table.fill(histogram)
    return table


def test_ddp_fit_builds_the_single_process_table_and_writes_once(ddp_fit: tuple[Path, Path]) -> None:
    _, run_dir = ddp_fit
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    oracle = single_process_table()
    assert int(state["net.color_table.counts"].sum()) == NUM_TRAIN * 32 * 32  # the padded repeat is not counted
    for name in ("counts", "mean_ab", "mode_ab"):
        assert torch.equal(state[f"net.color_table.{name}"], getattr(oracle, name)), name
    # Rank 0 alone writes the config and the sample grids.
    assert [p.name for p in run_dir.glob("config*.yaml")] == ["config.yaml"]
    assert len(list((run_dir / "samples").glob("*.png"))) == 1


def printed_metrics(output: str) -> dict[str, float]:
    return {name: float(value) for name, value in re.findall(r"(val/[a-z0-9_]+)\s*[│|]?\s*([-+0-9.eE]+)", output)}


def test_ddp_metrics_are_synced_across_processes(ddp_fit: tuple[Path, Path]) -> None:
    root, run_dir = ddp_fit
    config, checkpoint = str(root / "config.yaml"), str(run_dir / "checkpoints" / "last.ckpt")
    common = ["validate", "--config", config, "--ckpt_path", checkpoint, "--trainer.logger=false"]
    two = printed_metrics(run(*common, *DDP, cwd=root).stdout)
    one = printed_metrics(run(*common, "--trainer.devices=1", cwd=root).stdout)
    assert set(one) >= {"val/loss", "val/acc", "val/psnr"} and set(two) == set(one)
    for name, value in one.items():  # 32 images, 4 batches: each process sees 2, the sync sees all
        assert two[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_ddp_predict_writes_each_photo_once_as_one_process_would(ddp_fit: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = ddp_fit
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate([(40, 56), (33, 47), (64, 64), (20, 90), (71, 38)]):  # 5: uneven shards
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(photos / f"photo{index}.png")
    out = tmp_path / "colorized"
    result = run(
        "predict", "--config", str(Path(__file__).parents[1] / "configs" / "predict.yaml"), "--ckpt_path", str(checkpoint),
        "--data.inputs", f"[{photos}]", "--data.num_workers", "0", "--writer.output_dir", str(out), *DDP, cwd=tmp_path,
    )  # fmt: skip
    assert "wrote 5 images" in result.stdout and "by 2 processes" in result.stdout
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"photo{i}_colorized_T0.8.png" for i in range(5)]
    colorizer = Colorizer.from_checkpoint(checkpoint)  # the DDP checkpoint, in one process
    for index in range(5):
        single = np.asarray(colorizer.colorize(photos / f"photo{index}.png", temperature=0.8))
        with Image.open(out / f"photo{index}_colorized_T0.8.png") as ddp_image:
            assert np.array_equal(np.asarray(ddp_image), single), index
