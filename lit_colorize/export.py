"""``lit-colorize export``: a checkpoint as an ONNX graph that takes L and returns ab.

The graph holds the U-Net and the decoding (bin table, temperature), so a runtime without
PyTorch only has to convert RGB to L before and join L with ab after. Input ``l``: float (B,
1, H, W), L*/100 in [0, 1], H and W multiples of the U-Net's ``size_multiple``; output
``ab``: float (B, 2, H, W) in CIE ab units (H/s x W/s for a model trained with
``output_stride`` s: upsample it before joining it with L). T is fixed at export
(``--temperature``) or, when left out, an input ``temperature`` (a float scalar). A model
trained with hints (``hints: true``) takes ``hints`` after ``l``: float (B, 3, H, W), the hint
ab as (ab + 128) / 255 and the hint mask (0 and 0 where there is no hint;
``lit_colorize.user_hints.working_hints`` builds it).
The README's "Export to ONNX" runs such a graph with onnxruntime, numpy and scikit-image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.export import Dim

from lit_colorize.atomic import atomic_path
from lit_colorize.bins import MissingColorTableError
from lit_colorize.errors import ConfigError, OneLineArgumentParser, UserError, check_temperature
from lit_colorize.module import ColorizationModule

INSTALL_EXTRA = 'pip install -e ".[export]"'  # as the README says; from PyPI: pip install "lit-colorize[export]"


class MissingExtraError(UserError, ImportError):
    """A package of the ``export`` extra (onnx, onnxscript, onnxruntime) is not installed."""


#: The exporter (torch.export + onnxscript) builds opset 18 graphs; a newer opset is written as
#: asked, an older one only where ONNX's version converter manages (17 here, not 5). Whatever it
#: manages is checked on the graph before anything is written (:func:`check_opset_written`).
EXPORTER_OPSET = 18


def check_opset(opset: object) -> int:
    """``--opset``: a whole number up to the newest opset the installed onnx knows; else ConfigError."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not 1 <= opset <= newest:
        raise ConfigError(
            f"--opset must be a whole number from 1 to {newest} (the newest the installed onnx {onnx.__version__} knows; "
            f"{EXPORTER_OPSET} is the exporter's own), got {opset!r}"
        )
    return opset


def check_opset_written(written: int, opset: int) -> None:
    """The graph's opset is the one asked for; the exporter keeps 18 silently where it cannot convert."""
    if written != opset:
        raise ConfigError(
            f"--opset {opset}: the exporter cannot write this model in opset {opset} (it builds opset {EXPORTER_OPSET} "
            f"graphs and could not convert this one; it would have written opset {written}); nothing was written; "
            f"choose --opset {EXPORTER_OPSET} or newer"
        )


def check_output_writable(output: Path) -> None:
    """``--output`` can be written (its folder exists and is writable, or can be created), before
    the model loads; the error names the output, never the hidden temporary file beside it."""
    folder = output.absolute().parent
    existing = next(p for p in (folder, *folder.parents) if os.path.lexists(p))
    if output.is_dir():
        raise ConfigError(f"--output {output} is a folder; give a file name, e.g. {output / 'model.onnx'}")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        where = f"{existing} is a file" if not existing.is_dir() else f"{existing} is not writable"
        raise ConfigError(f"cannot write --output {output}: {where}; choose another --output")


class LToAb(nn.Module):
    """Network plus decoding as one traceable module: L (B, 1, H, W) -> ab (B, 2, H, W). The
    network's own decoding runs, so export and inference cannot diverge."""

    def __init__(self, module: ColorizationModule) -> None:
        super().__init__()
        self.net = module.net.for_export()

    def forward(self, l_norm: Tensor, temperature: Tensor) -> Tensor:
        return self.net.decode(self.net(l_norm), temperature)


class HintedLToAb(LToAb):
    """A user-guided model's graph: L (B, 1, H, W) and its hint channels (B, 3, H, W) -> ab."""

    def forward(self, l_norm: Tensor, hints: Tensor, temperature: Tensor) -> Tensor:
        return self.net.decode(self.net(self.net.network_input(l_norm, hints)), temperature)


class FixedTemperature(nn.Module):
    def __init__(self, inner: LToAb, temperature: float) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.inner(*inputs, self.temperature)


def export_onnx(
    module: ColorizationModule,
    output: str | Path,
    temperature: float | None = 0.8,
    example_size: tuple[int, int] = (64, 96),
    opset: int = EXPORTER_OPSET,
) -> Path:
    """Write ``module`` (net + decoding) to ``output`` as ONNX, with torch.export (the dynamo
    exporter): batch, height and width are dynamic, height and width multiples of the U-Net's
    ``size_multiple``. The file appears only when complete."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise MissingExtraError(f"ONNX export needs onnx and onnxscript ({error.name} is missing): {INSTALL_EXTRA}") from error
    if module.is_classifier and not bool(module.color_table.built):
        raise MissingColorTableError("this classification model has no bin color table yet, so the graph could not decode its bins")
    if temperature is not None:
        temperature = check_temperature(temperature)
    opset = check_opset(opset)
    output = Path(output)
    module = module.cpu().eval()
    multiple = module.net.size_multiple
    height, width = (max(multiple, s // multiple * multiple) for s in example_size)
    example = torch.rand(1, 1, height, width)
    hinted = module.net.hints
    graph = (HintedLToAb if hinted else LToAb)(module).eval()
    rows, columns = Dim("rows"), Dim("columns")
    l_shape = {0: Dim("batch"), 2: multiple * rows, 3: multiple * columns}
    inputs = {"l_norm": (example, l_shape)}
    if hinted:
        inputs["hints"] = (torch.zeros(1, 3, height, width), l_shape)
    names = ["l", "hints"] if hinted else ["l"]
    if temperature is None:
        inputs["temperature"] = (torch.tensor(0.8), {})
        model, names = graph, [*names, "temperature"]
    else:
        model = FixedTemperature(graph, temperature).eval()
    args = tuple(value for value, _ in inputs.values())
    dynamic_shapes = {name: shape for name, (_, shape) in inputs.items()}
    if temperature is not None:  # FixedTemperature takes *inputs: shapes by position
        dynamic_shapes = {"inputs": tuple(dynamic_shapes.values())}
    output.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            model, args, input_names=names, output_names=["ab"], dynamic_shapes=dynamic_shapes,
            opset_version=opset, dynamo=True, verbose=False,
        )  # fmt: skip
    check_opset_written(program.model.opset_imports.get("", EXPORTER_OPSET), opset)
    try:
        with atomic_path(output) as temporary:
            program.save(str(temporary))
    except OSError as error:  # named by the output, not by the hidden temporary file
        raise OSError(error.errno, f"cannot write {output}: {error.strerror or error}", str(output)) from error
    return output


def main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="lit-colorize export", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", default=None, help="a lit-colorize checkpoint (.ckpt); default: the shipped model")
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.add_argument("--temperature", type=float, default=None,
                        help="fix T in the graph (e.g. 0.8); left out, T is a second input")  # fmt: skip
    parser.add_argument("--opset", type=int, default=EXPORTER_OPSET,
                        help=f"ONNX opset of the graph ({EXPORTER_OPSET} or newer; older only where it converts)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    from lit_colorize.colorizer import module_from_checkpoint
    from lit_colorize.pretrained import pretrained_checkpoint

    output = Path(args.output)
    if output.exists() and not args.overwrite and not output.is_dir():
        raise ConfigError(f"{output} exists; pass --overwrite to replace it")
    check_output_writable(output)
    check_opset(args.opset)
    if args.temperature is not None:
        check_temperature(args.temperature, "--temperature")
    # Errors of the user's files (lit_colorize.errors) end the command with one line, in cli.main.
    module = module_from_checkpoint(args.ckpt_path or pretrained_checkpoint())
    export_onnx(module, output, args.temperature, opset=args.opset)
    takes = ", ".join(["l", *(["hints"] if module.net.hints else []), *([] if args.temperature is not None else ["temperature"])])
    print(
        f"wrote {output}: inputs ({takes}) -> ab; H and W multiples of {module.net.size_multiple}; "
        f"trained on images of short side {module.net.predict_short_side} (run it at about that size)"
    )

