"""Ship the student: ONNX and TorchScript files that take stored inputs and bake in the input
encoding, checked against the PyTorch model, and the deployment benchmark."""

from kdistill.export.deployable import Deployable, load_deployable, model_file_of
from kdistill.export.formats import (
    DEFAULT_OPSET,
    FORMATS,
    export_model,
    onnx_session,
    predict_onnx,
    verify_export,
)

__all__ = [
    "DEFAULT_OPSET",
    "FORMATS",
    "Deployable",
    "export_model",
    "load_deployable",
    "model_file_of",
    "onnx_session",
    "predict_onnx",
    "verify_export",
]
