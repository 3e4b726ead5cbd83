"""``lit-colorize predict`` against bad photos, bad disks and reruns: one photo's failure never
ends the run, run-level problems stop it before the model loads with one line, and the user's
files end up as a user expects (umask mode, no stray configs, outputs never read back)."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lit_colorize import ColorizationModule
from lit_colorize.cli import main
from lit_colorize.network import ColorizationNet
from lit_colorize.atomic import is_partial, partial_path
from tests.conftest import REPO_ROOT
from tests.helpers import cli_env, console_script

PREDICT_CONFIG = REPO_ROOT / "configs" / "predict.yaml"
OUT_OF_MEMORY = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 5.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 5368709120 bytes"),
]  # fmt: skip


def make_photos(folder: Path, names: list[str], size: tuple[int, int] = (40, 56)) -> list[Path]:
    """Small noise photos, a different size each (so a fault can pick one out by its size)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size[0] + i, size[1], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def predict_args(checkpoint: Path, inputs: list[Path], output_dir: Path, *extra: str) -> list[str]:
    return ["predict", "--config", str(PREDICT_CONFIG), "--ckpt_path", str(checkpoint),
            "--data.inputs", f"[{', '.join(str(p) for p in inputs)}]", "--writer.output_dir", str(output_dir),
            "--data.num_workers", "0", *extra]  # fmt: skip


def run_in_process(args: list[str]) -> int:
    """``lit-colorize`` in this process (faults injected with monkeypatch): its exit status."""
    try:
        main(args)
    except SystemExit as exit:
        return 0 if exit.code in (None, 0) else 1
    return 0


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def drop_privileges() -> list[str]:
    """Root without its capabilities: file permissions apply to it as to any user."""
    probe = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr.decode().strip()}")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all"] if os.geteuid() == 0 else []


def run_cli(args: list[str], cwd: Path, privileged: bool = True, umask: int = -1) -> subprocess.CompletedProcess:
    prefix = [] if privileged else drop_privileges()
    return subprocess.run(
        [*prefix, console_script(), *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=300, umask=umask
    )  # fmt: skip


# --- 3. one bad photo or a bad disk never ends the run ------------------------------------


@pytest.mark.parametrize("error", OUT_OF_MEMORY, ids=["cuda-oom", "cpu-allocator"])
def test_out_of_memory_fails_that_photo_only(tmp_path, checkpoint, monkeypatch, capsys, error) -> None:
    """Before: the exception ended the run with a traceback and no summary."""
    photos = make_photos(tmp_path / "in", ["a.png", "b.png", "c.png"])
    big_height = 41  # b.png
    network = ColorizationNet.predict_ab

    def predict_ab(self, l_norm, temperatures):
        if self._photo_height == big_height:
            raise error
        return network(self, l_norm, temperatures)

    colorize_photo = ColorizationNet.colorize_photo

    def remember_height(self, rgb, *args, **kwargs):
        self._photo_height = rgb.shape[-2]
        return colorize_photo(self, rgb, *args, **kwargs)

    monkeypatch.setattr(ColorizationNet, "predict_ab", predict_ab)
    monkeypatch.setattr(ColorizationNet, "colorize_photo", remember_height)
    out = tmp_path / "out"
    status = run_in_process(predict_args(checkpoint, [tmp_path / "in"], out, "--overwrite", "false"))

    printed = capsys.readouterr().out
    assert status == 1
    assert f"FAILED {photos[1]}: out of memory colorizing this 56x41 photo" in printed
    assert "wrote 2 images" in printed and "1 failed" in printed
    assert files_under(out) == {"a_colorized_T0.8.png", "c_colorized_T0.8.png"}


def test_disk_full_fails_that_photo_and_leaves_no_temporary_file(tmp_path, checkpoint, monkeypatch, capsys) -> None:
    """The encoder writes part of the file, then the disk is full. Before: the run ended there."""
    photos = make_photos(tmp_path / "in", ["a.png", "b.png", "c.png"])
    save = Image.Image.save

    def save_until_full(self, fp, *args, **kwargs):
        if self.height == 41:  # b.png's output
            fp.write(b"\x89PNG\r\n\x1a\n" + bytes(4096))
            fp.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_until_full)
    out = tmp_path / "out"
    status = run_in_process(predict_args(checkpoint, [tmp_path / "in"], out))

    printed = capsys.readouterr().out
    assert status == 1
    assert f"FAILED {photos[1]}: cannot write {out / 'b_colorized_T0.8.png'}: No space left on device" in printed
    assert "wrote 2 images" in printed and "1 failed" in printed
    assert sorted(p.name for p in out.iterdir()) == ["a_colorized_T0.8.png", "c_colorized_T0.8.png"]  # hidden ones too


@pytest.mark.slow
@pytest.mark.parametrize("obstacle", ["a file", "a read-only folder"])
def test_unwritable_output_subfolder_fails_those_photos_only(tmp_path, checkpoint, capsys, obstacle) -> None:
    """A file stands where a subfolder of the output goes (in this process), or the subfolder
    is read-only (a real ``lit-colorize predict`` without root's capabilities): an OSError
    at write time, reported for that photo only. Before: the run ended there."""
    make_photos(tmp_path / "in", ["a.png", "album/b.png"])
    out = tmp_path / "out"
    out.mkdir()
    args = predict_args(checkpoint, [tmp_path / "in"], out)
    if obstacle == "a file":
        (out / "album").write_text("not a folder")
        status, printed = run_in_process(args), capsys.readouterr().out
        reason = ""
    else:
        (out / "album").mkdir(mode=0o555)
        result = run_cli(args, tmp_path, privileged=False)
        status, printed = result.returncode, result.stdout
        reason = ": Permission denied"

    assert status == 1
    failure = f"FAILED {tmp_path / 'in' / 'album' / 'b.png'}: cannot write {out / 'album' / 'b_colorized_T0.8.png'}{reason}"
    assert failure in printed and "wrote 1 images" in printed
    assert files_under(out) == ({"a_colorized_T0.8.png", "album"} if obstacle == "a file" else {"a_colorized_T0.8.png"})
    assert obstacle == "a file" or list((out / "album").iterdir()) == []  # no temporary file either


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["a file", "not writable", "an input folder"])
def test_run_level_problems_stop_before_the_model_loads(tmp_path, checkpoint, problem) -> None:
    """Before: a traceback after the model had loaded (file, not writable), or the outputs read
    back as inputs on the next run (an input folder)."""
    photos = make_photos(tmp_path / "in", ["a.png"])
    inputs, out = photos, tmp_path / "out"
    if problem == "a file":
        out.write_text("my notes")
        expected = f"output folder {out} is a file; choose another with --writer.output_dir"
    elif problem == "not writable":
        (tmp_path / "locked").mkdir()
        (tmp_path / "locked").chmod(0o555)
        out = tmp_path / "locked" / "out"
        expected = f"output folder {out} is not writable ({tmp_path / 'locked'}, where it would be created, is not)"
    else:
        inputs, out = [tmp_path / "in"], tmp_path / "in"
        expected = f"output folder {out} is the input folder {tmp_path / 'in'}"
    result = run_cli(predict_args(checkpoint, inputs, out), tmp_path, privileged=problem != "not writable")

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("lit-colorize predict: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert "Loaded model weights" not in result.stdout + result.stderr
    assert files_under(tmp_path / "in") == {"a.png"}
    assert problem != "a file" or out.read_text() == "my notes"


# --- 4. the user's files as a user expects -------------------------------------------------


@pytest.mark.slow
def test_read_only_current_folder_umask_mode_and_no_config(tmp_path, checkpoint) -> None:
    """Before: predict saved config.yaml (then config-1.yaml, ...) into the current folder, so
    a read-only one failed; outputs were 0600 from the temporary file. Also `--overwrite true`
    (refused before: "unrecognized arguments: true")."""
    photos = make_photos(tmp_path / "in", ["a.png"])
    here = tmp_path / "here"
    here.mkdir()
    here.chmod(0o555)
    out = tmp_path / "out"
    result = run_cli(predict_args(checkpoint, photos, out, "--overwrite", "true"), here, privileged=False, umask=0o002)

    assert result.returncode == 0, result.stderr[-3000:]
    assert list(here.iterdir()) == []
    assert stat.S_IMODE((out / "a_colorized_T0.8.png").stat().st_mode) == 0o664  # 0666 & ~umask
    assert files_under(out) == {"a_colorized_T0.8.png"}


KILL_ON_SECOND_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    from PIL import Image
    save, saves = Image.Image.save, []

    def save_then_die(self, fp, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:  # the second output, half written
            fp.write(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(65536))
            fp.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return save(self, fp, *args, **kwargs)

    Image.Image.save = save_then_die
    from lit_colorize.cli import main
    main(sys.argv[1:])
    """
)


@pytest.mark.slow
def test_rerun_after_kill9_removes_its_leftover_and_writes_only_what_is_missing(tmp_path, checkpoint) -> None:
    """Before: the kill left `.b_colorized_T0.8.<random>.png` forever, and a rerun recomputed
    everything and failed with "exists" (there was no --skip_existing)."""
    make_photos(tmp_path / "in", ["a.png", "b.png", "c.png"])
    out = tmp_path / "out"
    args = predict_args(checkpoint, [tmp_path / "in"], out)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_ON_SECOND_SAVE, *args], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    leftovers = [p for p in out.iterdir() if is_partial(p.name)]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".b_colorized_T0.8.")
    assert files_under(out) == {"a_colorized_T0.8.png", leftovers[0].name}
    first = (out / "a_colorized_T0.8.png").stat()

    # A user's hidden file that only looks similar is not ours, and stays.
    (out / ".notes.partial.png").write_bytes(b"mine")
    rerun = run_cli([*args, "--skip_existing"], tmp_path)

    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "removed 1 temporary file(s)" in rerun.stdout
    assert "wrote 2 images" in rerun.stdout and "kept 1 that existed" in rerun.stdout
    assert files_under(out) == {"a_colorized_T0.8.png", "b_colorized_T0.8.png", "c_colorized_T0.8.png", ".notes.partial.png"}
    again = (out / "a_colorized_T0.8.png").stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # not rewritten


def test_outputs_are_never_read_back_and_symlink_loops_are_reported(tmp_path, checkpoint, capsys) -> None:
    """Output folder inside the input folder, run twice; a symlink loop given directly and one
    inside the folder. Before: the loop ended the run ("does not exist"), and a second run
    colorized the first run's outputs (``a_colorized_T0.8_colorized_T0.8.png``)."""
    folder = tmp_path / "album"
    make_photos(folder, ["a.png", "sub/b.png"])
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (folder / "sub" / "c.jpg").symlink_to(folder / "sub" / "d.jpg")
    (folder / "sub" / "d.jpg").symlink_to(folder / "sub" / "c.jpg")
    out = folder / "colorized"
    args = predict_args(checkpoint, [folder, tmp_path / "loop"], out)

    assert run_in_process(args) == 1
    printed = capsys.readouterr().out
    assert f"FAILED {tmp_path / 'loop'}: cannot read image {tmp_path / 'loop'}: it is a symbolic link loop" in printed
    assert f"FAILED {folder / 'sub' / 'c.jpg'}: cannot read image" in printed and "3 failed" in printed
    assert files_under(out) == {"a_colorized_T0.8.png", "sub/b_colorized_T0.8.png"}

    # Outputs left by an earlier run into the folder itself are no inputs either.
    (out / "a_colorized_T0.8.png").rename(folder / "a_colorized_T0.8.png")
    assert run_in_process([*args, "--skip_existing", "true"]) == 1  # the loops, again
    printed = capsys.readouterr().out
    assert "wrote 1 images" in printed and "kept 1 that existed" in printed
    assert files_under(out) == {"a_colorized_T0.8.png", "sub/b_colorized_T0.8.png"}
    assert "a_colorized_T0.8.png" in files_under(folder)


def test_partial_names_carry_the_writer_host_namespace_and_pid(tmp_path) -> None:
    from lit_colorize.atomic import host_name, process_space

    path = partial_path(tmp_path / "x_colorized_T0.8.png")
    assert is_partial(path.name) and path.name.startswith(f".x_colorized_T0.8.{host_name()}~{process_space()}-{os.getpid()}-")
    assert path.name.endswith(".partial.png") and path.parent == tmp_path


# --- what a run counts as its own files ----------------------------------------------------


def test_folder_search_skips_outputs_and_the_output_folder(tmp_path) -> None:
    from lit_colorize.photo_files import find_photos

    folder = tmp_path / "album"
    make_photos(folder, ["a.png", "b_colorized_T0.8.png", "c_colorized_T1e-05.jpg", "sub/d.jpg", "colorized/e.png",
                         "f_v2_T0.png", "g_colorized_T0.8.png.jpg"])  # fmt: skip
    (folder / f".a_colorized_T0.8.{os.getpid()}-0123abcd.partial.png").write_bytes(b"")
    found = find_photos([folder], output_dir=folder / "colorized", suffix="_v2_T{temperature}")
    # g's name ends in .jpg after the suffix pattern: a user's file
    assert [(s.path.relative_to(folder).as_posix(), s.relative_dir, s.error) for s in found] == [
        ("a.png", "", None), ("g_colorized_T0.8.png.jpg", "", None), ("sub/d.jpg", "sub", None),
    ]  # fmt: skip
    # Named directly, a file is an input whatever its name: the user asked for it.
    assert [s.path for s in find_photos([folder / "b_colorized_T0.8.png"])] == [folder / "b_colorized_T0.8.png"]


def test_stale_temporary_files_are_removed_only_when_their_writer_is_gone(tmp_path) -> None:
    from lit_colorize.atomic import host_name, process_space, remove_stale_partials

    finished = subprocess.Popen(["true"])
    finished.wait()
    (tmp_path / "sub").mkdir()
    here = f"{host_name()}~{process_space()}"
    dead = tmp_path / "sub" / f".a_colorized_T0.8.{here}-{finished.pid}-0123abcd.partial.png"
    alive = tmp_path / f".b_colorized_T0.8.{here}-{os.getppid()}-0123abcd.partial.jpg"  # a process still writing
    mine = [tmp_path / ".a_colorized_T0.8.12345.partial.png", tmp_path / "a_colorized_T0.8.png", tmp_path / ".hidden.png"]
    for path in [dead, alive, *mine]:
        path.write_bytes(b"x")
    assert remove_stale_partials(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted([alive.name, *(p.name for p in mine)])


def test_run_level_checks_name_the_problem(tmp_path) -> None:
    from lit_colorize.outputs import PredictSetupError, check_predict_setup

    photo = make_photos(tmp_path / "in", ["a.png"])[0]
    assert check_predict_setup(tmp_path / "new" / "out", [photo], False, True) == tmp_path / "new" / "out"
    assert not (tmp_path / "new").exists()  # checked, not created
    (tmp_path / "notes.txt").write_text("mine")
    cases = {
        "contradict each other": (tmp_path / "out", [photo], True, True),
        f"input {tmp_path / 'missing.jpg'} does not exist": (tmp_path / "out", [tmp_path / "missing.jpg"], False, False),
        "no inputs": (tmp_path / "out", [], False, False),
        f"cannot be created: {tmp_path / 'notes.txt'} is a file": (tmp_path / "notes.txt" / "out", [photo], False, False),
        "is the input folder": (tmp_path / "in" / "." , [tmp_path / "in"], False, False),
    }  # fmt: skip
    for message, args in cases.items():
        with pytest.raises(PredictSetupError, match=message.replace(".", r"\.")):
            check_predict_setup(*args)


@pytest.mark.slow
def test_predict_memory_benchmark_quick_run() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.predict_memory", "--quick", "--commands", "predict"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line[:1].isdigit()}
    assert rows["1x10000"][2:4] == ["16x4096", "1x10000"] and rows["3x5000"][2:4] == ["16x4096", "3x5000"]
    assert all(float(row[4]) < 3000 for row in rows.values())  # MB; was 5 GB for the 1x10000 strip


@pytest.mark.parametrize("temperatures", [[float("nan")], [-0.5], [], [0.8, 1e9]])
def test_writer_refuses_temperatures_that_cannot_render(temperatures) -> None:
    """Before: NaN (an all-black image) and huge values were accepted by the writer."""
    from callbacks import ColorizedPhotoWriter
    from lit_colorize.errors import ConfigError

    with pytest.raises(ConfigError, match="writer.temperatures"):
        ColorizedPhotoWriter(temperatures=temperatures)
