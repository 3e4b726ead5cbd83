"""scripts/assemble_shared_data.py, offline: the check names what is missing or differs in a
tree, and a tree is built from sources already on disk (a GitHub-style tarball, a Debian
package, a plain file, a video cut to its first packets) byte for byte; nothing is downloaded
unless asked. The sources here are made by the tests, in the formats the real ones have."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

import pytest

from scripts.assemble_shared_data import AssembleError, Entry, Source, assemble, check, main


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing_digest(files: dict[str, bytes]) -> str:
    """The folder digest the script documents: SHA-256 of "name sha256\\n" lines sorted by name."""
    return sha("".join(f"{name} {sha(data)}\n" for name, data in sorted(files.items())).encode())


def tar_bytes(files: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def ar_member(name: str, data: bytes) -> bytes:
    """One member of an ar archive (the common format: 60-byte header, even padding)."""
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    assert len(header) == 60
    return header + data + (b"\n" if len(data) % 2 else b"")


def make_deb(path: Path, files: dict[str, bytes]) -> Path:
    """A Debian package as dpkg-deb writes one: debian-binary, control.tar.xz, data.tar.xz."""
    path.write_bytes(b"!<arch>\n" + ar_member("debian-binary", b"2.0\n")
                     + ar_member("control.tar.xz", tar_bytes({"./control": b"Package: x\n"}, "w:xz"))
                     + ar_member("data.tar.xz", tar_bytes(files, "w:xz")))
    return path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the script tried to download without --download")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


PHOTOS = {"1.jpg": b"\xff\xd8 one", "2.jpg": b"\xff\xd8 two"}


def tiny_tree(root: Path) -> list[Entry]:
    """A folder of two photos and one file, with entries that describe them."""
    source = Source("https://example.invalid/x", "x")
    for name, data in PHOTOS.items():
        (root / "photos" / "a").mkdir(parents=True, exist_ok=True)
        (root / "photos" / "a" / name).write_bytes(data)
    (root / "video").mkdir()
    (root / "video" / "clip.bin").write_bytes(b"clip")
    return [Entry("photos/a", "folder", source, listing_digest(PHOTOS), "a", 2),
            Entry("video/clip.bin", "file", source, sha(b"clip"))]


def test_check_names_each_part_that_is_missing_or_differs(tmp_path: Path) -> None:
    entries = tiny_tree(tmp_path)
    assert check(tmp_path, entries) == []
    (tmp_path / "photos" / "a" / "2.jpg").write_bytes(b"\xff\xd8 TWO")
    assert check(tmp_path, entries) == ["photos/a: 2 files as expected, but their contents differ"]
    (tmp_path / "photos" / "a" / "2.jpg").unlink()
    (tmp_path / "video" / "clip.bin").unlink()
    assert check(tmp_path, entries) == ["photos/a: 1 files, expected 2", "video/clip.bin: missing"]
    (tmp_path / "photos" / "a" / "1.jpg").unlink()
    (tmp_path / "photos" / "a").rmdir()
    assert check(tmp_path, entries)[0] == "photos/a: missing (expected 2 files)"


def test_a_tree_is_built_from_sources_on_disk_byte_for_byte(tmp_path: Path, no_network: None) -> None:
    sources, root = tmp_path / "sources", tmp_path / "data"
    sources.mkdir()
    tarball = {"repo-0123abc/imgs/" + name: data for name, data in PHOTOS.items()}
    tarball["repo-0123abc/imgs/deeper/3.jpg"] = b"not in the folder"
    tarball["repo-0123abc/other/4.jpg"] = b"nor this"
    (sources / "repo.tar.gz").write_bytes(tar_bytes(tarball, "w:gz"))
    wallpaper = b"\x89PNG a wallpaper"
    make_deb(sources / "walls.deb", {"./usr/share/wallpapers/Dune/contents/images/3840x2160.png": wallpaper,
                                     "./usr/share/doc/walls/copyright": b"GPL-2+"})
    (sources / "clip.bin").write_bytes(b"clip")
    entries = [
        Entry("photos/a", "folder", Source("u1", "repo.tar.gz"), listing_digest(PHOTOS), "imgs", 2),
        Entry("photos/large/walls__Dune.png", "deb_file", Source("u2", "walls.deb", sha((sources / "walls.deb").read_bytes())), sha(wallpaper)),
        Entry("video/clip.bin", "file", Source("u3", "clip.bin"), sha(b"clip")),
    ]
    (root / "photos" / "a").mkdir(parents=True)
    (root / "photos" / "a" / "stale.jpg").write_bytes(b"left from an older build")
    assert assemble(root, sources, download=False, entries=entries) == []
    assert sorted(path.name for path in (root / "photos" / "a").iterdir()) == ["1.jpg", "2.jpg"]
    assert (root / "photos" / "a" / "2.jpg").read_bytes() == PHOTOS["2.jpg"]
    assert (root / "photos" / "large" / "walls__Dune.png").read_bytes() == wallpaper
    assert (root / "video" / "clip.bin").read_bytes() == b"clip"


def test_missing_sources_are_one_line_naming_them_and_nothing_is_downloaded(tmp_path: Path, no_network: None) -> None:
    entries = [Entry("video/clip.bin", "file", Source("https://example.invalid/clip", "clip.bin"), sha(b"clip"))]
    with pytest.raises(AssembleError) as error:
        assemble(tmp_path / "data", tmp_path / "sources", download=False, entries=entries)
    message = str(error.value)
    assert "clip.bin" in message and "--download" in message and "\n" not in message
    assert not (tmp_path / "data").exists()


def test_a_package_that_is_not_the_published_one_is_refused(tmp_path: Path, no_network: None) -> None:
    make_deb(tmp_path / "walls.deb", {"./w.png": b"png"})
    entries = [Entry("photos/large/w.png", "deb_file", Source("https://example.invalid/walls.deb", "walls.deb", "0" * 64), sha(b"png"))]
    with pytest.raises(AssembleError, match=r"walls\.deb is not the published file .* download https://example\.invalid/walls\.deb"):
        assemble(tmp_path / "data", tmp_path, download=False, entries=entries)


def test_a_video_is_cut_to_its_first_packets_without_reencoding(tmp_path: Path, no_network: None) -> None:
    av = pytest.importorskip("av")
    import numpy as np

    clip = tmp_path / "clip.avi"
    with av.open(str(clip), "w", format="avi") as container:
        video = container.add_stream("mjpeg", rate=10)
        video.width, video.height, video.pix_fmt = 32, 24, "yuvj420p"
        for index in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), index * 40, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    with av.open(str(clip)) as container:
        payloads = [bytes(packet) for packet in container.demux(container.streams.video[0]) if packet.size]
    assert len(payloads) == 6
    digest = hashlib.sha256(b"".join(payloads[:4])).hexdigest()
    sources = tmp_path / "sources"
    sources.mkdir()
    make_deb(sources / "doc.deb", {"./usr/share/doc/x/examples/data/clip.avi": clip.read_bytes()})
    entries = [Entry("video/clip_first4.avi", "trimmed_video", Source("u", "doc.deb"), digest, "usr/share/doc/x/examples/data/clip.avi", 4)]
    assert assemble(tmp_path / "data", sources, download=False, entries=entries) == []
    with av.open(str(tmp_path / "data" / "video" / "clip_first4.avi")) as container:
        assert len(list(container.decode(container.streams.video[0]))) == 4


def test_the_shared_data_beside_the_checkout_is_as_published(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--dest", str(shared_data)]) == 0
    assert capsys.readouterr().out.strip().endswith("21 of 21 parts as published, complete")
