"""Semantic interpretability of colorizations (issue 28, as Zhang et al. 2016 did with VGG):
does a classifier trained on real color photos recognize colorized ones better than gray ones?

Why: per-pixel color error cannot tell a plausible color from a meaningful one. A classifier
that learned its classes from real color loses accuracy when the color is taken away (gray); a
colorization that puts back the color the class needs wins part of that loss back. The share
of the gray -> real accuracy gap that it wins back, (colorized - gray) / (real - gray), is what
issue 28's target reads (at least a third).

The classifier is a compact CNN built from scratch (no downloaded weights), trained, seeded, on
the labelled sources of the corpus's training split (``docs/data/train.txt``): Caltech-101's
classes (``caltech101/<category>/101_ObjectCategories--<class>--image_NNNN.jpg``) and Intel's
scenes (``intel/<category>/dataset--seg_train--<class>--NNNNN.jpg``), at a small size with
random crops and flips. It is cached under ``--cache-dir`` keyed by its settings and its
training list, so a second run only scores. Each held-out labelled photo
(``docs/data/heldout.txt``) is scored three ways, through the same resizing from its own
stored size: as it is (real color); gray (its own L*, a = b = 0, back to RGB); and colorized by
each ``--model`` as ``lit-colorize predict`` does (:class:`~lit_colorize.colorizer.Colorizer`
at the model's own predict defaults, the full-size photo in and out).

    python -m benchmarks.semantic --corpus /work/data/corpus                 # the shipped model
    python -m benchmarks.semantic --corpus ... --model a.ckpt --model b.ckpt --out report.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.common import REPO_ROOT, checkpoint_path, machine_line
from lit_colorize.atomic import atomic_write
from lit_colorize.color import gray_rgb, split_lab
from lit_colorize.colorizer import Colorizer
from lit_colorize.imageio import read_image
from lit_colorize.pretrained import pretrained_checkpoint

LABELLED_SOURCES = ("caltech101", "intel")
INTEL_CLASSES = ("buildings", "forest", "glacier", "mountain", "sea", "street")
TOP_K = 5
BOOTSTRAP_RESAMPLES = 2000


class LabelError(ValueError):
    """A photo of a labelled source whose name does not carry its class."""


# --- labels ---------------------------------------------------------------------------------
def label_of(entry: str) -> str | None:
    """A corpus entry (``source/category/file``) -> its class, ``source/class``; None for a
    source without classes. LabelError, naming the entry, for a labelled source's odd name."""
    parts = entry.strip().split("/")
    source, name = parts[0], parts[-1]
    if source not in LABELLED_SOURCES:
        return None
    pieces = name.rsplit(".", 1)[0].split("--")
    if source == "caltech101" and len(pieces) == 3 and pieces[0] == "101_ObjectCategories" and pieces[1]:
        return f"caltech101/{pieces[1]}"
    if source == "intel" and len(pieces) == 4 and pieces[:2] == ["dataset", "seg_train"] and pieces[2] in INTEL_CLASSES:
        return f"intel/{pieces[2]}"
    expected = (
        "caltech101/<category>/101_ObjectCategories--<class>--<file>.jpg"
        if source == "caltech101"
        else f"intel/<category>/dataset--seg_train--<one of {', '.join(INTEL_CLASSES)}>--<number>.jpg"
    )
    raise LabelError(f"{entry}: a {source} photo named unlike {expected}; rebuild the corpus with scripts/build_corpus.py")


def read_list(path: Path) -> list[str]:
    """Entries of a split list (``#`` comments and blank lines skipped); one line if unreadable."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SystemExit(f"cannot read the split list {path}: {error.strerror}; pass --train-list / --heldout-list") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def labelled(entries: Sequence[str]) -> list[tuple[str, str]]:
    """(entry, class) for the entries of labelled sources, in order."""
    pairs = [(entry, label_of(entry)) for entry in entries]
    return [(entry, label) for entry, label in pairs if label is not None]


# --- pixels ---------------------------------------------------------------------------------
def square(rgb: Tensor, side: int) -> Tensor:
    """uint8 RGB (3, H, W) -> uint8 (3, side, side): shorter side resized to ``side``
    (antialiased), then the center square. Every view of a photo goes this one way."""
    height, width = rgb.shape[-2:]
    scale = side / min(height, width)
    size = (max(side, round(height * scale)), max(side, round(width * scale)))
    resized = F.interpolate(rgb[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    return resized[:, top : top + side, left : left + side].round().clamp(0, 255).to(torch.uint8)


def gray_photo(rgb: Tensor) -> Tensor:
    """uint8 RGB (3, H, W) -> the same photo with its own L* and a = b = 0, as uint8 RGB: what
    a colorizer starts from, shown as a user would see it."""
    l_norm, _ = split_lab(rgb[None])
    return gray_rgb(l_norm)[0].mul(255).round().clamp(0, 255).to(torch.uint8)


# --- the classifier -------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """What the trained classifier depends on (with the training list): its cache key."""

    size: int = 64
    epochs: int = 8  # about 12 minutes of one core for the corpus's 18,914 labelled training photos
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    batch_size: int = 64
    lr: float = 0.1
    weight_decay: float = 5e-4
    seed: int = 0

    @property
    def side(self) -> int:
        """The stored square side: random ``size`` crops of it in training, the center one to score."""
        return math.ceil(self.size * 9 / 8)

    def key(self, pairs: Sequence[tuple[str, str]]) -> str:
        text = json.dumps({"settings": asdict(self), "train": sorted(pairs)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


class SmallCNN(nn.Module):
    """3x3 conv + BatchNorm + ReLU stages, each halving the size (the first keeps it), two convs
    per stage, global average pooling and one linear layer. Takes float RGB in [0, 1]."""

    def __init__(self, widths: Sequence[int], classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [*conv_bn_relu(3, widths[0], 1)]
        for before, width in zip(widths, widths[1:]):
            layers += [*conv_bn_relu(before, width, 2), *conv_bn_relu(width, width, 1)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], classes)

    def forward(self, rgb: Tensor) -> Tensor:
        x = (rgb - 0.5) / 0.25
        return self.head(self.features(x).mean(dim=(2, 3)))


def conv_bn_relu(before: int, width: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(before, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]


def random_crops(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """uint8 (B, 3, S, S) -> float (B, 3, size, size) in [0, 1]: a seeded random crop of each,
    half of them flipped left to right."""
    count, side = images.shape[0], images.shape[-1]
    offsets = torch.randint(0, side - size + 1, (count, 2), generator=generator).tolist()
    flips = torch.rand(count, generator=generator) < 0.5
    crops = torch.stack([image[:, top : top + size, left : left + size] for image, (top, left) in zip(images, offsets)])
    crops = torch.where(flips[:, None, None, None], crops.flip(-1), crops)
    return crops.float().div_(255)


def center_crops(images: Tensor, size: int) -> Tensor:
    margin = (images.shape[-1] - size) // 2
    return images[..., margin : margin + size, margin : margin + size].float().div_(255)


def train_classifier(
    images: Tensor, labels: Tensor, classes: int, settings: Settings, log: Callable[[str], None]
) -> tuple[SmallCNN, float]:
    """SGD (Nesterov momentum, one-cycle learning rate) on seeded random crops and flips; the
    model and its last epoch's mean loss."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    model = SmallCNN(settings.widths, classes).to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(images) / settings.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9, nesterov=True, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=settings.epochs * steps_per_epoch)
    model.train()
    start, cpu_start, loss_sum = time.perf_counter(), time.process_time(), 0.0
    for epoch in range(settings.epochs):
        order = torch.randperm(len(images), generator=generator)
        loss_sum, correct = 0.0, 0
        for step in range(steps_per_epoch):
            batch = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            inputs = random_crops(images[batch], settings.size, generator).contiguous(memory_format=torch.channels_last)
            logits = model(inputs)
            loss = F.cross_entropy(logits, labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += float(loss.detach()) * len(batch)
            correct += int((logits.argmax(1) == labels[batch]).sum())
        log(
            f"  epoch {epoch + 1}/{settings.epochs}: loss {loss_sum / len(images):.3f}, "
            f"training top-1 {correct / len(images):.3f}, {time.perf_counter() - start:.0f} s "
            f"({time.process_time() - cpu_start:.0f} s of CPU)"
        )
    return model.eval(), loss_sum / len(images)


def load_squares(corpus: Path, entries: Sequence[str], side: int, log: Callable[[str], None]) -> Tensor:
    """uint8 (N, 3, side, side): each listed photo read as predict reads it, then :func:`square`."""
    out = torch.empty(len(entries), 3, side, side, dtype=torch.uint8)
    for i, entry in enumerate(entries):
        out[i] = square(read_photo(corpus, entry), side)
        if (i + 1) % 5000 == 0:
            log(f"  read {i + 1}/{len(entries)} photos")
    return out


def read_photo(corpus: Path, entry: str) -> Tensor:
    path = corpus / entry
    if not path.is_file():
        raise SystemExit(f"{path} is listed but missing: rebuild the corpus (docs/data/CORPUS.md) or pass --corpus")
    return read_image(path).rgb


@dataclass
class Classifier:
    model: SmallCNN
    classes: list[str]
    origin: str  # how it came: trained (and how long it took) or loaded from the cache


def classifier_for(
    corpus: Path, pairs: Sequence[tuple[str, str]], settings: Settings, cache_dir: Path, retrain: bool, log: Callable[[str], None]
) -> Classifier:
    """The cached classifier for these settings and training photos, or a newly trained one
    (saved there for the next run)."""
    path = cache_dir / f"semantic-{settings.key(pairs)}.pt"
    if path.is_file() and not retrain:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = SmallCNN(settings.widths, len(saved["classes"]))
        model.load_state_dict(saved["state_dict"])
        trained = f"{saved['seconds']:.0f} s, {saved['cpu_seconds']:.0f} s of CPU"
        origin = f"loaded from {path} (trained in {trained}, last epoch's loss {saved['loss']:.3f})"
        return Classifier(model.eval(), list(saved["classes"]), origin)
    classes = sorted({label for _, label in pairs})
    index = {label: i for i, label in enumerate(classes)}
    log(f"reading {len(pairs)} training photos")
    images = load_squares(corpus, [entry for entry, _ in pairs], settings.side, log)
    labels = torch.tensor([index[label] for _, label in pairs])
    log(f"training the classifier ({settings.epochs} epochs)")
    start, cpu_start = time.perf_counter(), time.process_time()
    model, loss = train_classifier(images, labels, len(classes), settings, log)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    cache_dir.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    with atomic_write(path) as stream:
        torch.save({"state_dict": state, "classes": classes, "seconds": seconds, "cpu_seconds": cpu_seconds, "loss": loss}, stream)
    trained = f"{seconds:.0f} s, {cpu_seconds:.0f} s of CPU"
    return Classifier(model, classes, f"trained in {trained}, last epoch's loss {loss:.3f}; saved to {path}")


# --- scoring --------------------------------------------------------------------------------
#: What each row is scored by, per photo: its class the classifier's first guess, among its
#: first five, and the cross-entropy -log p(class) (lower is better; less noisy than hits).
MEASURES = ("top-1", f"top-{TOP_K}", "cross-entropy")


@torch.no_grad()
def per_photo(model: SmallCNN, squares: Tensor, labels: Tensor, size: int, batch: int = 256) -> dict[str, Tensor]:
    """Each of MEASURES for each photo (N,): hits as 0/1, the cross-entropy in nats."""
    logits = torch.cat([model(center_crops(squares[i : i + batch], size)) for i in range(0, len(squares), batch)])
    top = logits.topk(min(TOP_K, logits.shape[1]), dim=1).indices
    hits = [(top[:, 0] == labels).float(), (top == labels[:, None]).any(dim=1).float()]
    return dict(zip(MEASURES, [*hits, F.cross_entropy(logits, labels, reduction="none")]))


def gap_share(real: float, gray: float, colorized: float) -> float:
    """The share of the gray -> real accuracy gap that colorizing closes; NaN when there is no gap."""
    gap = real - gray
    return (colorized - gray) / gap if gap > 0 else math.nan


def bootstrap_interval(real: Tensor, gray: Tensor, colorized: Tensor, seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """95% interval of :func:`gap_share` of the per-photo scores' means (higher is better) over
    photos resampled with replacement (the same photos for all three views, as they are paired)."""
    rng = np.random.default_rng(seed)
    views = np.stack([real.numpy(), gray.numpy(), colorized.numpy()]).astype(np.float64)
    picks = rng.integers(0, views.shape[1], size=(resamples, views.shape[1]))
    means = views[:, picks].mean(axis=2)  # (3, resamples)
    gap = means[0] - means[1]
    shares = np.where(gap > 0, (means[2] - means[1]) / np.where(gap > 0, gap, 1), np.nan)
    low, high = np.nanpercentile(shares, [2.5, 97.5]) if np.isfinite(shares).any() else (math.nan, math.nan)
    return float(low), float(high)


@dataclass
class Row:
    name: str
    scores: dict[str, Tensor]  # MEASURES -> per photo
    seconds: float | None = None  # colorizing time

    def mean(self, measure: str, mask: Tensor | None = None) -> float:
        values = self.scores[measure]
        return float(values[mask].mean() if mask is not None else values.mean())

    def goodness(self, measure: str) -> Tensor:
        """Per photo, higher is better: the hits, or the cross-entropy negated."""
        return -self.scores[measure] if measure == "cross-entropy" else self.scores[measure]

    def share(self, real: Row, gray: Row, measure: str, seed: int) -> str:
        """This row's share of the gray -> real gap in ``measure``, with its 95% interval."""
        means = [float(row.goodness(measure).mean()) for row in (real, gray, self)]
        low, high = bootstrap_interval(real.goodness(measure), gray.goodness(measure), self.goodness(measure), seed)
        return f"{percent(gap_share(*means))} [{percent(low)}, {percent(high)}]"


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def emit(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def score(
    corpus: Path, colorizers: dict[str, Colorizer], report: Report, classifier: Classifier, heldout: Sequence[tuple[str, str]], settings: Settings
) -> None:
    """Fills report.rows: real, gray, then one row per colorizer, on the same held-out photos."""
    index = {label: i for i, label in enumerate(classifier.classes)}
    labels = torch.tensor([index[label] for _, label in heldout])
    names = ["real color", "gray (L only, a = b = 0)", *(f"colorized: {name}" for name in colorizers)]
    views: list[list[Tensor]] = [[] for _ in names]
    seconds = [0.0] * len(colorizers)
    for entry, _ in heldout:
        rgb = read_photo(corpus, entry)
        squares = [square(rgb, settings.side), square(gray_photo(rgb), settings.side)]
        for i, colorizer in enumerate(colorizers.values()):
            start = time.perf_counter()
            colored = colorizer.colorize(rgb)  # the model's own predict defaults
            seconds[i] += time.perf_counter() - start
            squares.append(square(colored, settings.side))
        for view, one in zip(views, squares):
            view.append(one)
    for n, (name, squares) in enumerate(zip(names, views)):
        scores = per_photo(classifier.model, torch.stack(squares), labels, settings.size)
        report.rows.append(Row(name, scores, seconds[n - 2] if n >= 2 else None))


def print_tables(report: Report, heldout: Sequence[tuple[str, str]], seed: int) -> None:
    real, gray, *colorized = report.rows
    count = len(heldout)
    emit = report.emit
    emit()
    emit(f"{'row':<42} {'photos':>6} " + " ".join(f"{measure:>13}" for measure in MEASURES))
    for row in report.rows:
        emit(f"{row.name:<42} {count:>6} " + " ".join(f"{row.mean(measure):>13.4f}" for measure in MEASURES))
    emit()
    emit("gap closed = (colorized - gray) / (real - gray), for cross-entropy (gray - colorized) / (gray - real);")
    emit("[95% interval]: the held-out photos resampled with replacement, paired across rows, 2,000 times")
    emit(f"{'row':<42} " + " ".join(f"{measure:<26}" for measure in MEASURES).rstrip())
    for row in colorized:
        emit(f"{row.name:<42} " + " ".join(f"{row.share(real, gray, measure, seed):<26}" for measure in MEASURES).rstrip())
    sources = sorted({entry.split("/")[0] for entry, _ in heldout})
    emit()
    emit("top-1 by source: " + ", ".join(f"{source} {sum(e.startswith(source + '/') for e, _ in heldout)} photos" for source in sources))
    emit(f"{'row':<42} " + " ".join(f"{source:>10}" for source in sources))
    for row in report.rows:
        masks = [torch.tensor([entry.startswith(source + "/") for entry, _ in heldout]) for source in sources]
        emit(f"{row.name:<42} " + " ".join(f"{row.mean('top-1', mask):>10.4f}" for mask in masks))
    for row in colorized:
        emit(f"colorizing with {row.name.split(': ', 1)[1]}: {row.seconds:.1f} s for {count} photos ({row.seconds / count * 1000:.0f} ms each)")


def percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(REPO_ROOT.parent / "data" / "corpus"), help="the corpus folder (source/category/file)")
    parser.add_argument("--train-list", default=str(REPO_ROOT / "docs" / "data" / "train.txt"))
    parser.add_argument("--heldout-list", default=str(REPO_ROOT / "docs" / "data" / "heldout.txt"))
    parser.add_argument("--model", action="append", help="a checkpoint to colorize with (repeatable; default: the shipped model)")
    parser.add_argument("--size", type=int, default=Settings.size, help="the classifier's crop size in pixels")
    parser.add_argument("--epochs", type=int, default=Settings.epochs)
    parser.add_argument("--widths", type=int, nargs="+", default=list(Settings.widths))
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size)
    parser.add_argument("--lr", type=float, default=Settings.lr)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--cache-dir", default=".cache/lit-colorize")
    parser.add_argument("--retrain", action="store_true", help="train the classifier even when a cached one fits")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--out", help="also write the printed report to this file")
    args = parser.parse_args(argv)
    for name in ("size", "epochs", "batch_size", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more")
    if min(args.widths) < 1:
        parser.error("--widths must all be 1 or more")
    return args


def main(argv: Sequence[str] | None = None) -> Report:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    corpus = Path(args.corpus).expanduser()
    if not corpus.is_dir():
        raise SystemExit(f"no corpus at {corpus}: build it (docs/data/CORPUS.md) and pass --corpus")
    settings = Settings(args.size, args.epochs, tuple(args.widths), args.batch_size, args.lr, seed=args.seed)
    try:
        train = labelled(read_list(Path(args.train_list)))
        heldout_all = labelled(read_list(Path(args.heldout_list)))
    except LabelError as error:
        raise SystemExit(str(error)) from None
    if not train or not heldout_all:
        raise SystemExit(f"no labelled ({', '.join(LABELLED_SOURCES)}) photos in {args.train_list} or {args.heldout_list}")
    # the checkpoints are read before the classifier trains, so a wrong one costs no training
    models = {name: checkpoint_path(name) for name in args.model} if args.model else {(path := pretrained_checkpoint()).name: path}
    colorizers = {name: Colorizer.from_checkpoint(path) for name, path in models.items()}
    report = Report()
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731 - progress, not the report
    classifier = classifier_for(corpus, train, settings, Path(args.cache_dir).expanduser(), args.retrain, log)
    known = set(classifier.classes)
    heldout = [(entry, label) for entry, label in heldout_all if label in known]
    report.emit("lit-colorize semantic interpretability (issue 28; Zhang et al. 2016 did it with VGG on ImageNet)")
    report.emit(machine_line())
    report.emit(
        f"classifier: SmallCNN widths {'-'.join(map(str, settings.widths))}, {settings.size} px crops of {settings.side} px squares "
        f"(random crops + flips), {settings.epochs} epochs, batch {settings.batch_size}, lr {settings.lr:g} one-cycle, "
        f"seed {settings.seed}; {len(train)} labelled training photos of {shown(args.train_list)}, {len(classifier.classes)} classes "
        f"({class_mix(classifier.classes)}); {classifier.origin}"
    )
    report.emit(
        f"held-out: {len(heldout)} labelled photos of {shown(args.heldout_list)}"
        + (f" ({len(heldout_all) - len(heldout)} of a class absent from training left out)" if len(heldout) < len(heldout_all) else "")
        + "; each view resized the same way from the photo's stored size, the center crop scored"
    )
    if not heldout:
        raise SystemExit(f"no held-out photo of {args.heldout_list} has a class the classifier was trained on")
    log(f"scoring {len(heldout)} held-out photos")
    score(corpus, colorizers, report, classifier, heldout, settings)
    print_tables(report, heldout, args.seed)
    if args.out:
        with atomic_write(args.out, "w", encoding="utf-8") as stream:
            stream.write("\n".join(report.lines) + "\n")
    return report


def shown(path: str) -> str:
    """A path inside the repository as relative to it (the report reads the same on any clone)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path


def class_mix(classes: Sequence[str]) -> str:
    counts = {source: sum(c.startswith(source + "/") for c in classes) for source in LABELLED_SOURCES}
    return ", ".join(f"{count} {source}" for source, count in counts.items() if count)


if __name__ == "__main__":
    main()
