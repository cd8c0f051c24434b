"""``kdistill export``: the trained student as ONNX or TorchScript, checked before it ships."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from kdistill.errors import KDistillError

EXPORT_EPILOG = """examples:
  kdistill export runs/hinton-mnist/student-distilled --format onnx
  kdistill export runs/tabular/student.safetensors --format torchscript --data npz:tab.npz

The file takes stored inputs as float32 (pixel values 0..255 for images, raw features for
tabular data) with a free batch axis, and applies the run's normalisation and input_shape
itself. It is checked on the data set's test split: every prediction must match PyTorch's."""


def add_export_verb(verbs: argparse._SubParsersAction) -> None:
    export = verbs.add_parser(
        "export",
        help="export a trained model to ONNX or TorchScript (checked against PyTorch)",
        description="Export the student (or model) of a run folder, or a model file.",
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "run", help="a run folder (student.safetensors / model.safetensors) or a model file"
    )
    export.add_argument(
        "--format", dest="export_format", choices=["onnx", "torchscript"], default="onnx"
    )
    export.add_argument("--output", help="output file (default: beside the model, .onnx or .pt)")
    export.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    export.add_argument(
        "--data",
        help="data set to check the export on (default: the run's config.yaml data.name)",
    )
    export.add_argument("--model-spec", help="package.module:factory, for a file without a recipe")
    export.add_argument(
        "--model-kwargs", default="{}", help="keyword arguments for --model-spec (YAML)"
    )


def _data_name(model_file: Path, given: str | None) -> str:
    if given:
        return given
    config = model_file.parent / "config.yaml"
    if config.is_file():
        loaded = yaml.safe_load(config.read_text()) or {}
        name = (loaded.get("data") or {}).get("name")
        if name:
            return str(name)
    raise KDistillError(
        f"no config.yaml beside {model_file} says which data set it was trained on: pass --data"
    )


def run_export(args: argparse.Namespace) -> int:
    from kdistill.data import load_dataset
    from kdistill.export import DEFAULT_OPSET, export_model, load_deployable, model_file_of
    from kdistill.export.formats import verify_export
    from kdistill.files import cache_dir

    model_file = model_file_of(args.run)
    recipe = None
    if args.model_spec:
        kwargs = yaml.safe_load(args.model_kwargs)
        if not isinstance(kwargs, dict):
            raise KDistillError(f"--model-kwargs {args.model_kwargs!r} must be a YAML mapping")
        recipe = {"name": args.model_spec, "kwargs": kwargs}
    model, _ = load_deployable(model_file, recipe)
    test = load_dataset(_data_name(model_file, args.data), cache_dir=cache_dir()).test
    stored = test.inputs
    suffix = ".onnx" if args.export_format == "onnx" else ".pt"
    output = Path(args.output) if args.output else model_file.with_suffix(suffix)
    opset = args.opset or DEFAULT_OPSET
    export_model(model, stored[:2].float(), output, args.export_format, opset=opset)
    report = verify_export(model, output, args.export_format, stored)
    line = {"file": str(output), "format": args.export_format, **report}
    if args.export_format == "onnx":
        line["opset"] = opset
    line["bytes"] = output.stat().st_size
    print(json.dumps(line))
    return 0
