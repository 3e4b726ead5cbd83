"""Speed options: bf16 where native, channels_last, torch.compile; each must keep the results."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from callbacks import ColorTableBuilder
from lit_colorize import precision
from lit_colorize.module import ColorizationModule
from lit_colorize.precision import cpu_flags, default_precision
from tests.helpers import quick_trainer, tiny_toyshapes

X86_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\nbogomips\t: 5000\n"


def test_cpu_flags_and_native_bf16_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cascade_lake = tmp_path / "cascade_lake"
    cascade_lake.write_text(X86_CPUINFO)
    sapphire_rapids = tmp_path / "sapphire_rapids"
    sapphire_rapids.write_text(X86_CPUINFO.replace("avx512_vnni", "avx512_vnni avx512_bf16 amx_bf16 amx_tile"))
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert "avx512f" in cpu_flags(cascade_lake) and not precision.cpu_has_native_bf16(cascade_lake)
    assert precision.cpu_has_native_bf16(sapphire_rapids)
    assert cpu_flags(arm) == {"fp", "asimd", "bf16", "i8mm"} and not precision.cpu_has_native_bf16(arm)
    assert cpu_flags(tmp_path / "absent") == set()

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert default_precision("cpu") == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert default_precision("cpu") == "32-true"
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert default_precision("auto") == "32-true" and default_precision("gpu") == "32-true"


def test_bf16_mixed_training_runs_on_the_cpu_and_keeps_the_loss_in_float32(tmp_path: Path) -> None:
    """Emulated on CPUs without native bf16 (slow, hence tiny); what a bf16 machine runs."""
    torch.manual_seed(0)
    module = ColorizationModule(widths=(4, 8))
    batch = module.prepare_batch(torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8))
    fp32_loss = module.compute_loss(batch).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module.net.body(batch["l"]).dtype == torch.bfloat16
        bf16_loss = module.compute_loss(batch).loss
    assert bf16_loss.dtype == torch.float32
    assert bf16_loss.item() == pytest.approx(fp32_loss.item(), rel=2e-2)

    trainer = quick_trainer(tmp_path, precision="bf16-mixed", limit_train_batches=2, limit_val_batches=1)
    trainer.fit(ColorizationModule(widths=(4, 8)), tiny_toyshapes(batch_size=8))
    assert torch.isfinite(trainer.callback_metrics["val/loss"])


def test_channels_last_gives_the_same_step_as_the_contiguous_layout() -> None:
    torch.manual_seed(0)
    nhwc = ColorizationModule(widths=(4, 8, 16), channels_last=True)
    nchw = ColorizationModule(widths=(4, 8, 16), channels_last=False)
    nchw.load_state_dict(nhwc.state_dict())
    assert nhwc.net.encoders[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    batch = nhwc.prepare_batch(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))
    for module in (nhwc, nchw):
        module.compute_loss(batch).loss.backward()
    torch.testing.assert_close(nhwc.compute_loss(batch).loss, nchw.compute_loss(batch).loss)
    for (name, a), b in zip(nhwc.named_parameters(), nchw.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_compile_option_trains_on_the_cpu_and_matches_eager(tmp_path: Path) -> None:
    torch.manual_seed(0)
    compiled = ColorizationModule(widths=(4, 8), compile=True)
    eager = ColorizationModule(widths=(4, 8))
    eager.load_state_dict(compiled.state_dict())
    compiled.configure_model()
    assert compiled.net.compiled_body is not None and eager.net.compiled_body is None
    batch = eager.prepare_batch(torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8))
    torch.testing.assert_close(compiled.compute_loss(batch).loss, eager.compute_loss(batch).loss, rtol=1e-4, atol=1e-5)

    trainer = quick_trainer(tmp_path, limit_train_batches=3, limit_val_batches=1, callbacks=[ColorTableBuilder()])
    trainer.fit(ColorizationModule(widths=(4, 8), compile=True), tiny_toyshapes(batch_size=8))
    assert trainer.global_step == 3 and torch.isfinite(trainer.callback_metrics["val/loss"])
