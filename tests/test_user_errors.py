"""User errors end a command with one line that names the file or option; bugs keep their traceback.

Most cases call ``lit_colorize.cli.main`` in this process (what the console script runs), which
turns a user error into ``SystemExit("lit-colorize <command>: error: ...")``; one subprocess per
kind of output checks what a user really sees.
"""

from __future__ import annotations

import pickle
import subprocess
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from datamodules import CIFAR100Subset, Landscape, Photos, ToyShapes
from lit_colorize import ColorizationModule
from lit_colorize import module as module_file
from lit_colorize import pretrained
from lit_colorize.cli import main
from lit_colorize.bins import MissingColorTableError
from lit_colorize.errors import ConfigError, UserError, check_temperatures, find_user_error, one_line
from tests.conftest import REPO_ROOT
from tests.helpers import cli_env, console_script, quick_trainer, tiny_toyshapes

TOY = str(REPO_ROOT / "configs" / "toyshapes.yaml")
PREDICT = str(REPO_ROOT / "configs" / "predict.yaml")
LANDSCAPE = str(REPO_ROOT / "configs" / "landscape.yaml")
UNSAFE_ADVICE = "weights_only"  # torch's "re-run with weights_only=False" would run the attacker's code


class RunsCodeWhenUnpickled:
    """Unpickling this creates ``marker``: if the file exists, the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(autouse=True)
def _command_line(monkeypatch) -> None:
    """main(args) is given its arguments; pytest's own must not look like ours."""
    monkeypatch.setattr("sys.argv", ["lit-colorize"])


def user_error(*args: str) -> str:
    """The one line ``lit-colorize <args>`` ends with."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    message = exit_info.value.code
    assert isinstance(message, str), f"exit status {message!r} instead of a one-line error"
    assert "\n" not in message and message.startswith(f"lit-colorize {args[0]}: error: ")
    assert UNSAFE_ADVICE not in message
    return message


def bad_checkpoints(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Each bad file with the words its error must contain."""
    folder.mkdir(exist_ok=True)
    data = good.read_bytes()
    files = {
        "random": (b"\x80\x02" + bytes(range(256)) * 16, "not a PyTorch checkpoint"),
        "truncated": (data[: len(data) // 2], "truncated or corrupt"),
        "empty": (b"", "empty"),
    }
    cases = {}
    for name, (content, words) in files.items():
        (folder / f"{name}.ckpt").write_bytes(content)
        cases[name] = (folder / f"{name}.ckpt", words)
    torch.save({"weights": torch.zeros(3)}, folder / "foreign.ckpt")  # today: KeyError 'pytorch-lightning_version'
    cases["foreign"] = (folder / "foreign.ckpt", "not a Lightning checkpoint")
    torch.save({"state_dict": {"w": torch.zeros(3)}}, folder / "no_version.ckpt")
    cases["no_version"] = (folder / "no_version.ckpt", "no pytorch-lightning_version")
    malicious = torch.load(good, weights_only=True)
    malicious["hyper_parameters"]["extra"] = RunsCodeWhenUnpickled(folder / "code_ran")
    torch.save(malicious, folder / "malicious.ckpt")  # pickled here; never loaded with code
    cases["malicious"] = (folder / "malicious.ckpt", "holds code to run")
    return cases


@pytest.mark.parametrize("case", ["random", "truncated", "empty", "foreign", "no_version", "malicious"])
def test_a_bad_checkpoint_is_one_line_naming_the_file(case: str, checkpoint: Path, tmp_path: Path) -> None:
    path, words = bad_checkpoints(tmp_path / "bad", checkpoint)[case]
    message = user_error("validate", "--config", TOY, "--ckpt_path", str(path), "--trainer.logger=false")
    assert str(path) in message and words in message
    assert not (tmp_path / "bad" / "code_ran").exists()


@pytest.mark.parametrize("command", ["fit", "predict", "export"])
def test_a_malicious_checkpoint_is_refused_by_every_command(command: str, checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path, words = bad_checkpoints(tmp_path / "bad", checkpoint)["malicious"]
    args = {
        "fit": ["fit", "--config", TOY, "--trainer.logger=false"],
        "predict": ["predict", "--config", PREDICT, "--data.inputs", f"[{tmp_path}]"],
        "export": ["export", "--output", str(tmp_path / "model.onnx")],
    }[command]
    message = user_error(*args, "--ckpt_path", str(path))
    assert str(path) in message and words in message
    assert not (tmp_path / "bad" / "code_ran").exists() and not (tmp_path / "model.onnx").exists()


@pytest.mark.slow
def test_the_user_sees_one_line_and_never_the_unsafe_advice(checkpoint: Path, tmp_path: Path) -> None:
    path, _ = bad_checkpoints(tmp_path / "bad", checkpoint)["malicious"]
    result = subprocess.run(
        [console_script(), "predict", "--config", PREDICT, "--ckpt_path", str(path), "--data.inputs", f"[{tmp_path}]"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output and UNSAFE_ADVICE not in output
    assert output.strip().splitlines()[-1].startswith(f"lit-colorize predict: error: cannot use checkpoint {path}")
    assert not (tmp_path / "bad" / "code_ran").exists()


def test_export_refuses_a_checkpoint_with_an_unknown_hyperparameter(checkpoint: Path, tmp_path: Path) -> None:
    saved = torch.load(checkpoint, weights_only=True)
    saved["hyper_parameters"]["mystery_option"] = 3  # today: TypeError traceback from ColorizationModule(**hparams)
    torch.save(saved, tmp_path / "other.ckpt")
    message = user_error("export", "--ckpt_path", str(tmp_path / "other.ckpt"), "--output", str(tmp_path / "m.onnx"))
    assert "mystery_option" in message and str(tmp_path / "other.ckpt") in message


def test_predict_without_a_checkpoint_and_no_shipped_model_is_one_line(tmp_path: Path, monkeypatch) -> None:
    """No --ckpt_path means the shipped model (tests/test_pretrained.py); an installation that lacks
    it says so and what to pass, rather than colorizing with an untrained model (orange images)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pretrained, "PRETRAINED_NAME", "not_shipped.ckpt")
    Image.new("RGB", (40, 32), (90, 90, 90)).save(tmp_path / "photo.png")
    message = user_error("predict", "--config", PREDICT, "--data.inputs", f"[{tmp_path / 'photo.png'}]")
    assert "--ckpt_path" in message and "shipped model" in message and "not_shipped.ckpt" in message
    assert not (tmp_path / "colorized").exists()


def test_an_untrained_classifier_refuses_to_predict(tmp_path: Path) -> None:
    trainer = quick_trainer(tmp_path, callbacks=[])
    with pytest.raises(MissingColorTableError, match="bin color table"):
        trainer.predict(ColorizationModule(widths=(8, 16, 32)), datamodule=tiny_toyshapes(num_val=4))


# --- option values ---------------------------------------------------------------------------
@pytest.mark.parametrize("grid_size", [0, 1, 129, 1000])
def test_grid_size_out_of_bounds_fails_before_anything_is_allocated(grid_size: int, monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the U-Net was built before grid_size was checked")

    monkeypatch.setattr(module_file, "ColorizationNet", no_network)
    with pytest.raises(ConfigError, match=f"grid_size must be an integer from 2 to 128.*got {grid_size}"):
        ColorizationModule(grid_size=grid_size)


@pytest.mark.parametrize(
    "option, value",
    [("--model.init_args.grid_size", "1000"), ("--model.init_args.grid_size", "0"), ("--data.init_args.batch_size", "0"),
     ("--data.init_args.batch_size", "-4")],
)  # fmt: skip
def test_bad_option_values_are_one_line(option: str, value: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    message = user_error("fit", "--config", TOY, f"{option}={value}", "--trainer.logger=false")
    assert option.rsplit(".", 1)[1] in message and f"got {value}" in message
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("datamodule", [ToyShapes, Landscape, CIFAR100Subset, Photos])
@pytest.mark.parametrize("batch_size", [0, -1])
def test_every_datamodule_refuses_a_batch_size_below_one(datamodule: type, batch_size: int) -> None:
    with pytest.raises(ConfigError, match=f"batch_size must be an integer >= 1, got {batch_size}"):
        datamodule(batch_size=batch_size)


# --- datamodule errors -----------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing", "empty", "unreadable"])
def test_landscape_folder_errors_are_one_line(case: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / case
    if case != "missing":
        folder.mkdir()
    if case == "unreadable":
        (folder / "a.jpg").write_bytes(b"not a jpeg")
    message = user_error(
        "fit", "--config", LANDSCAPE, f"--data.init_args.roots=[{folder}]", f"--data.init_args.cache_dir={tmp_path / 'c'}",
        "--model.init_args.widths=[8, 16]", "--trainer.logger=false",
    )  # fmt: skip
    expected = {"missing": "does not exist", "empty": "no images", "unreadable": "could be read as an image"}[case]
    assert expected in message and str(folder) in message


# --- the mechanism ---------------------------------------------------------------------------
def test_debug_flag_and_variable_show_the_traceback(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", TOY, "--data.init_args.batch_size=0", "--trainer.logger=false"]
    with pytest.raises(ValueError) as with_flag:  # the exception itself, as jsonargparse wrapped it
        main([*args, "--debug"])
    monkeypatch.setenv("LIT_COLORIZE_DEBUG", "1")
    with pytest.raises(ValueError) as with_variable:
        main(args)
    for raised in (with_flag, with_variable):
        assert isinstance(find_user_error(raised.value), ConfigError) and "batch_size" in str(find_user_error(raised.value))


def test_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch) -> None:
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug in lit-colorize")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ColorizationModule, "configure_optimizers", bug)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        main(["fit", "--config", TOY, "--trainer.fast_dev_run=true", "--trainer.logger=false",
              "--data.init_args.num_train=32", "--data.init_args.num_val=32"])  # fmt: skip


def test_user_errors_are_found_under_wrappers_and_told_in_one_line() -> None:
    try:
        try:
            raise FileNotFoundError("photo folder /x does not exist;\n set roots")
        except FileNotFoundError as inner:
            raise ValueError("Does not validate against any of the Union subtypes") from inner  # as jsonargparse does
    except ValueError as outer:
        found = find_user_error(outer)
    assert isinstance(found, FileNotFoundError) and one_line(found) == "photo folder /x does not exist; set roots"
    assert find_user_error(RuntimeError("a bug")) is None and find_user_error(ValueError("a bug")) is None
    assert find_user_error(OSError(28, "No space left on device", "/out/a.png")) is not None
    worker = ConfigError("Caught ConfigError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                         "  File \"x.py\", line 1\nlit_colorize.errors.ConfigError: batch_size must be >= 1\n")  # fmt: skip
    assert one_line(worker) == "batch_size must be >= 1"


@pytest.mark.parametrize("value", [float("nan"), -1.0, float("inf"), 10.5, "warm"])
def test_temperatures_must_be_finite_and_between_0_and_10(value: object) -> None:
    with pytest.raises(ConfigError, match="temperatures"):
        check_temperatures([0.8, value])
    assert check_temperatures([0, 0.8, 1, 10]) == [0.0, 0.8, 1.0, 10.0] and check_temperatures(0.5) == [0.5]
    with pytest.raises(ConfigError, match="at least one"):
        check_temperatures([])


def test_module_temperatures_are_checked() -> None:
    with pytest.raises(ConfigError, match="eval_temperature"):
        ColorizationModule(eval_temperature=float("nan"))
    with pytest.raises(ConfigError, match="predict_temperatures"):
        ColorizationModule(predict_temperatures=[0.8, -1])


def test_user_error_is_a_plain_exception_subclass_and_pickles() -> None:
    """Errors cross DataLoader worker and DDP process boundaries by pickling."""
    error = pickle.loads(pickle.dumps(ConfigError("batch_size must be >= 1")))
    assert isinstance(error, (UserError, ValueError)) and str(error) == "batch_size must be >= 1"


# --- training that blows up without NaN ------------------------------------------------------
def test_a_diverging_loss_warns_once(tmp_path: Path) -> None:
    """lr 1e6: the loss reaches 5e5 after one update (the issue saw 8e10, exit 0 and no warning)."""
    module = ColorizationModule(widths=(8, 16, 32), lr=1e6)
    trainer = quick_trainer(tmp_path, max_steps=3, limit_val_batches=0, num_sanity_val_steps=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, tiny_toyshapes())
    diverged = [str(w.message) for w in caught if "training has diverged" in str(w.message)]
    assert len(diverged) == 1 and "lr=1000000.0" in diverged[0]


def test_a_normal_run_does_not_warn(tmp_path: Path) -> None:
    module = ColorizationModule(widths=(8, 16, 32), lr=1e-3)
    trainer = quick_trainer(tmp_path, max_steps=3, limit_val_batches=0, num_sanity_val_steps=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, tiny_toyshapes())
    assert not [w for w in caught if "diverged" in str(w.message)]
    assert module.divergence.diverged_loss == pytest.approx(10 * torch.log(torch.tensor(324.0)).item())


# --- issue 26 case 9, issue 31 section 2: one line and exit 1, not a usage page and exit 2 ------
def test_cuda_without_a_gpu_is_one_line(tmp_path: Path, monkeypatch) -> None:
    """Before: Lightning's MisconfigurationException traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    Image.new("RGB", (40, 32), (90, 60, 30)).save(tmp_path / "photo.png")
    message = user_error("predict", "--config", PREDICT, "--data.inputs", f"[{tmp_path / 'photo.png'}]",
                         "--trainer.accelerator", "cuda")  # fmt: skip
    assert "--trainer.accelerator cuda: no CUDA GPU is available here" in message and "--trainer.accelerator cpu" in message
    assert not (tmp_path / "colorized").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--writer.video_format", "webm"], "--writer.video_format: Expected a typing.Literal['mp4', 'mkv']. Got value: webm; see lit-colorize predict --help"),
        (["--writer.working_size", "100000"], "working_size must be a whole number of pixels from 1 to 2048"),
        (["--model.init_args.lr", "abc"], "--model.lr: Expected a <class 'float'>. Got value: abc"),
        (["--no_such_option", "3"], "unrecognized arguments: --no_such_option 3"),
    ],
    ids=["video-format-webm", "working-size-100000", "lr-abc", "unknown-option"],
)  # fmt: skip
def test_wrong_option_values_are_one_line_not_a_usage_page(args: list[str], expected: str, tmp_path: Path, monkeypatch) -> None:
    """Before: jsonargparse's usage dump (60-80 lines) and exit status 2."""
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (40, 32), (90, 60, 30)).save(tmp_path / "photo.png")
    message = user_error("predict", "--config", PREDICT, "--data.inputs", f"[{tmp_path / 'photo.png'}]", *args)
    assert expected in message
    assert not (tmp_path / "colorized").exists()


def test_evaluate_working_size_beyond_the_bound_is_one_line(tmp_path: Path) -> None:
    """Before: --working_size 100000 tried to allocate tens of GB (a traceback, or the kernel's kill)."""
    Image.new("RGB", (40, 32), (90, 60, 30)).save(tmp_path / "photo.png")
    for value, words in (("100000", "from 1 to 2048"), ("0", "from 1 to 2048"), ("x", "invalid int value: 'x'")):
        message = user_error("evaluate", "--data.inputs", str(tmp_path / "photo.png"), "--working_size", value, "--out", str(tmp_path / "e"))
        assert "--working_size" in message and words in message
    assert not (tmp_path / "e").exists()


def test_predict_without_a_config_or_outside_the_clone_names_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the clone: configs/predict.yaml is not here
    Image.new("RGB", (40, 32), (90, 60, 30)).save(tmp_path / "old_photo.jpg")
    message = user_error("predict", "--data.inputs", "old_photo.jpg")
    assert f"predict needs its config: add --config {REPO_ROOT / 'configs' / 'predict.yaml'}" in message
    message = user_error("predict", "--config", "configs/predict.yaml", "--data.inputs", "old_photo.jpg")
    assert f"config file configs/predict.yaml not found (relative paths start at the current folder, {tmp_path})" in message
    assert f"--config {REPO_ROOT / 'configs' / 'predict.yaml'}" in message
    monkeypatch.chdir(REPO_ROOT)  # in the clone, the relative path is the fix
    message = user_error("predict", "--data.inputs", str(tmp_path / "old_photo.jpg"))
    assert "add --config configs/predict.yaml " in message
    assert not (tmp_path / "colorized").exists()


def test_a_bare_input_path_is_a_list_of_one(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    """``--data.inputs old_photo.jpg`` as the README's reader types it; before: a usage page, exit 2."""
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (40, 32), (90, 60, 30)).save(tmp_path / "old_photo.jpg")
    main(["predict", "--config", PREDICT, "--ckpt_path", str(checkpoint), "--data.inputs", "old_photo.jpg", "--data.num_workers", "0"])
    assert [p.name for p in (tmp_path / "colorized").iterdir()] == ["old_photo_colorized_T0.8.png"]


@pytest.mark.slow
def test_the_user_sees_one_line_and_exit_1_for_a_wrong_option(tmp_path: Path) -> None:
    result = subprocess.run(
        [console_script(), "predict", "--data.inputs", "old_photo.jpg"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"lit-colorize predict: error: predict needs its config: add --config {REPO_ROOT / 'configs' / 'predict.yaml'} "
        "(it names the photo inputs and the writer); e.g. lit-colorize predict --config configs/predict.yaml "
        "--data.inputs '[old_photo.jpg]'"
    ]
