"""The training jobs' configs are composed, not copied: the seed, trainer defaults, logger and
callbacks live once in configs/common/train.yaml, each job includes it (`config:` as its first
key) and sets only what differs, and landscape_bsds500 is landscape plus its data roots.
Checked on what the real CLI parser makes of the files (``--print_config``), not on their text:
shared defaults < the including file < the command line."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT
from tests.helpers import parsed_config

CONFIGS = REPO_ROOT / "configs"
# What each job sets of the trainer itself; all else of the trainer, and the seed, is shared.
OWN_TRAINER = {
    "toyshapes": {"max_epochs": 15, "log_every_n_steps": 10},
    "cifar100_subset": {"max_epochs": 50, "log_every_n_steps": 20},
    "landscape": {"max_epochs": 30, "log_every_n_steps": 20},
    "landscape_bsds500": {"max_epochs": 30, "log_every_n_steps": 20},
    "recipe": {"max_epochs": 50, "log_every_n_steps": 20},
    "hints": {"max_epochs": 50, "log_every_n_steps": 20},
    "imagenet_streaming": {"max_epochs": 20, "log_every_n_steps": 50},
    "general": {"max_epochs": 15, "log_every_n_steps": 20},
    "general_hints": {"max_epochs": 15, "log_every_n_steps": 20},
}
LANDSCAPE_ROOTS = ["../shared/data/landscape"]
BSDS500_ROOTS = ["../shared/data/landscape", "../shared/data/photos/bsds500"]


@functools.cache
def _job(name: str, *args: str) -> dict[str, Any]:
    return parsed_config("fit", "--config", str(CONFIGS / f"{name}.yaml"), *args)


def job(name: str, *args: str) -> dict[str, Any]:
    return copy.deepcopy(_job(name, *args))


def test_every_training_job_is_listed() -> None:
    jobs = {p.stem for p in CONFIGS.glob("*.yaml")} - {"predict"}
    assert jobs == set(OWN_TRAINER)


def test_jobs_share_the_seed_trainer_logger_and_callbacks() -> None:
    shared = {}
    for name, own in OWN_TRAINER.items():
        config = job(name)
        trainer = config["trainer"]
        assert {key: trainer.pop(key) for key in own} == own, name
        shared[name] = {"seed_everything": config["seed_everything"], "trainer": trainer}
    reference, *names = shared
    for name in names:
        assert shared[name] == shared[reference], f"{name} and {reference} differ in what they share"
    first = shared[reference]
    assert first["seed_everything"] == 0
    trainer = first["trainer"]
    assert trainer["accelerator"] == "auto" and trainer["devices"] == 1
    logger = trainer["logger"]
    assert logger["class_path"] == "lightning.pytorch.loggers.WandbLogger"
    assert logger["init_args"]["offline"] is True and logger["init_args"]["project"] == "lit-colorize"
    callbacks = [callback["class_path"] for callback in trainer["callbacks"]]
    assert len(callbacks) == 4 and callbacks[:2] == ["callbacks.auto_progress_bar", "callbacks.RunCheckpoint"]
    assert callbacks[3] == "callbacks.SampleGrid"


def test_landscape_bsds500_is_landscape_plus_its_roots() -> None:
    landscape, bsds500 = job("landscape"), job("landscape_bsds500")
    assert landscape["data"]["init_args"].pop("roots") == LANDSCAPE_ROOTS
    assert bsds500["data"]["init_args"].pop("roots") == BSDS500_ROOTS
    assert bsds500 == landscape


def test_the_hint_model_is_the_recipe_with_hints() -> None:
    """The same budget as the shipped model, so the hint benchmark compares like with like."""
    hints, recipe = job("hints"), job("recipe")
    for key in ("hints", "hint_free_context"):  # the hint model, with issue 31's local hints
        assert hints["model"]["init_args"].pop(key) is True and recipe["model"]["init_args"].pop(key) is False
    assert hints == recipe


def test_the_recipe_trains_on_every_photo_but_bsds500_test_and_holds_out_landscape() -> None:
    data = job("recipe")["data"]["init_args"]
    assert data["roots"] == LANDSCAPE_ROOTS  # split 90/10, seeded: the held-out tenth is validation
    assert data["train_roots"] == ["../shared/data/photos/bsds500"]  # its train/ and val/, never test/
    assert (data["val_fraction"], data["seed"]) == (0.1, 0)  # docs/model/heldout_landscape.txt


def test_the_general_model_trains_on_the_corpus_split_and_holds_out_its_list() -> None:
    """v2 (issue 28): the corpus's training list only; its held-out list is validation, never
    trained on; the v1 recipe's network and loss unless the corpus search changed them."""
    config = job("general")
    data, model = config["data"], config["model"]["init_args"]
    assert data["class_path"] == "datamodules.PhotoFolders"
    roots = data["init_args"]["roots"]
    assert {root["files"] for root in roots} == {"docs/data/train.txt"}
    assert {root["held_out"] for root in roots} == {"docs/data/heldout.txt"}
    assert {root["path"] for root in roots} == {"~/data/corpus"}
    assert {root["exclude"] for root in roots} == {"docs/data/tuning.txt"}  # kept apart for tuning
    assert model["class_rebalancing"] is True and model["global_context"] is True
    held_out = set((CONFIGS.parent / "docs" / "data" / "heldout.txt").read_text().splitlines())
    train = set((CONFIGS.parent / "docs" / "data" / "train.txt").read_text().splitlines())
    assert not {line for line in held_out & train if line and not line.startswith("#")}


def test_the_general_hint_model_is_the_general_recipe_with_both_hints() -> None:
    """v2's twin: the same corpus, network and budget as v2, plus local hints kept local and the
    global hint (issues 28, 30, 31)."""
    hints, general = job("general_hints"), job("general")
    for key in ("hints", "hint_free_context", "global_hints"):
        assert hints["model"]["init_args"].pop(key) is True and general["model"]["init_args"].pop(key) is False
    assert hints == general


def test_command_line_wins_over_the_job_and_the_shared_file() -> None:
    config = job("toyshapes", "--trainer.max_epochs=2", "--trainer.log_every_n_steps=3", "--seed_everything=7")
    trainer = config["trainer"]
    assert (trainer["max_epochs"], trainer["log_every_n_steps"], config["seed_everything"]) == (2, 3, 7)
    csv = job("landscape_bsds500", "--trainer.logger", str(CONFIGS / "logger" / "csv.yaml"), "--data.init_args.batch_size=5")
    assert csv["trainer"]["logger"]["class_path"] == "lightning.pytorch.loggers.CSVLogger"
    assert csv["data"]["init_args"]["batch_size"] == 5 and csv["data"]["init_args"]["roots"] == BSDS500_ROOTS
    ddp = job("landscape_bsds500", "--trainer", str(CONFIGS / "trainer" / "ddp.yaml"))
    assert (ddp["trainer"]["strategy"], ddp["trainer"]["devices"]) == ("ddp", -1)
    assert ddp["trainer"]["callbacks"] == job("landscape")["trainer"]["callbacks"]  # merged, not replaced


def test_an_including_file_keeps_what_it_does_not_set(tmp_path: Path, monkeypatch) -> None:
    """Includes chain, resolve against the including file's folder (not the current one), and an
    including file's dotted keys change those keys only, also inside a class's init_args."""
    (tmp_path / "jobs" / "more").mkdir(parents=True)
    (tmp_path / "jobs" / "small.yaml").write_text(
        f"config: {CONFIGS / 'landscape.yaml'}\ndata.init_args.batch_size: 7\ntrainer.log_every_n_steps: 5\n"
    )
    (tmp_path / "jobs" / "more" / "roots.yaml").write_text("config: ../small.yaml\ndata.init_args.roots: [/my/photos]\n")
    monkeypatch.chdir(tmp_path)
    config = parsed_config("fit", "--config", str(tmp_path / "jobs" / "more" / "roots.yaml"))
    expected = job("landscape")
    expected["data"]["init_args"].update(batch_size=7, roots=["/my/photos"])
    expected["trainer"]["log_every_n_steps"] = 5
    assert config == expected
