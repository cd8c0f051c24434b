"""ONNX (through ``torch.onnx``, run by onnxruntime) and TorchScript (``torch.jit.trace``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdistill.errors import KDistillError
from kdistill.export.deployable import Deployable
from kdistill.files import atomic_write

__all__ = [
    "DEFAULT_OPSET",
    "FORMATS",
    "export_model",
    "onnx_session",
    "predict_onnx",
    "predict_stored",
    "verify_export",
]

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 18
"""ONNX opset 18, the torch.export-based exporter's own (onnxruntime >= 1.14 runs it)."""


def _first_line(error: BaseException) -> str:
    """The first line of the innermost cause: the exporters wrap the real reason."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


def _onnx_bytes(model: Deployable, example: torch.Tensor, opset: int) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "model.onnx"
        _export_onnx_file(model, example, target, opset)
        return target.read_bytes()


def _export_onnx_file(model: Deployable, example: torch.Tensor, target: Path, opset: int) -> None:
    # The torch.export-based exporter (PyTorch's supported one since 2.9; the TorchScript
    # exporter is deprecated), with a free batch axis.
    torch.onnx.export(
        model,
        (example,),
        target,
        dynamo=True,
        input_names=["inputs"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=opset,
        external_data=False,  # one self-contained file (students are far below 2 GB)
        verbose=False,
    )


def _torchscript_bytes(model: Deployable, example: torch.Tensor) -> bytes:
    import io

    traced = torch.jit.trace(model, example, check_trace=True)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    return buffer.getvalue()


def export_model(
    model: Deployable,
    example: torch.Tensor,
    path: str | Path,
    export_format: str = "onnx",
    *,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write ``model`` to ``path`` as ONNX or TorchScript (atomically); ``example`` is a batch
    of stored inputs (float32) that fixes every axis but the batch."""
    if export_format not in FORMATS:
        raise KDistillError(f"--format {export_format!r}: use one of {', '.join(FORMATS)}")
    name = type(model.model).__name__
    try:
        with torch.no_grad():
            if export_format == "onnx":
                try:
                    import onnx  # noqa: F401  (torch.onnx writes through them)
                    import onnxscript  # noqa: F401
                except ImportError:
                    raise KDistillError(
                        "ONNX export needs the onnx package: pip install 'kdistill[export]'"
                    ) from None
                payload = _onnx_bytes(model, example, opset)
            else:
                payload = _torchscript_bytes(model, example)
    except KDistillError:
        raise
    except Exception as error:  # exporters raise many types for untraceable code
        reason = _first_line(error)
        fix = (
            "replace that operation, or use --format torchscript"
            if "not supported" in reason
            else "its forward must be traceable (tensors in and out, no Python control flow "
            "on tensor values)"
        )
        raise KDistillError(f"cannot export {name} to {export_format} ({reason}): {fix}") from None
    path = Path(path)
    atomic_write(path, lambda handle: handle.write(payload))
    return path


def onnx_session(path: str | Path) -> Any:
    """An onnxruntime CPU session for an exported file."""
    try:
        import onnxruntime
    except ImportError:
        raise KDistillError(
            "running ONNX files needs onnxruntime: pip install 'kdistill[export]'"
        ) from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def predict_stored(
    run: Callable[[torch.Tensor], torch.Tensor], stored: torch.Tensor, batch_size: int = 2000
) -> torch.Tensor:
    """``run`` (a model, a loaded file) on stored inputs as float32, batch by batch, no grad."""
    with torch.no_grad():
        return torch.cat(
            [run(stored[i : i + batch_size].float()) for i in range(0, len(stored), batch_size)]
        )


def predict_onnx(session: Any, stored: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Logits of an ONNX session for stored inputs, batch by batch."""

    def run(chunk: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(session.run(None, {"inputs": chunk.numpy()})[0]))

    return predict_stored(run, stored, batch_size)


def verify_export(
    model: Deployable, path: str | Path, export_format: str, stored: torch.Tensor
) -> dict[str, Any]:
    """Run the exported file and the PyTorch model on ``stored`` inputs: how many predictions
    agree and the largest logit difference. Raises if any prediction differs."""
    expected = predict_stored(model, stored)
    if export_format == "onnx":
        got = predict_onnx(onnx_session(path), stored)
    else:
        got = predict_stored(torch.jit.load(str(path)), stored)
    agree = int((got.argmax(1) == expected.argmax(1)).sum())
    report = {
        "examples": len(stored),
        "same_prediction": agree,
        "max_abs_logit_difference": float((got - expected).abs().max()),
    }
    if agree != len(stored):
        raise KDistillError(
            f"{path} predicts differently from the PyTorch model on {len(stored) - agree} of "
            f"{len(stored)} examples: do not ship it (report this with the model's class)"
        )
    return report
