"""`engine export`: a spec's model through PyTorch's own exporters.

    engine export resnet50 --format torch-export -o resnet50.pt2    # torch.export.save
    engine export resnet50 --format onnx -o resnet50.onnx            # torch.onnx (dynamo)

The model is built in eval mode and traced on example inputs of the spec's input shapes
(random normal for float inputs, zeros for integer ids); the exported graph has those static
shapes: change the batch with `--set dims.B=8`. ONNX export needs the `onnx` and `onnxscript`
packages (`pip install -e '.[dev]'`); models over 1.5 GiB of weights keep them in a
`FILE.data` file beside the .onnx, as ONNX's 2 GiB protobuf limit requires.

A spec with several networks (`networks:`) has no single module to export: from the command
line it is refused, with the names of its networks; from Python, `export_spec(...,
network="generator")` exports one of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.compiler import analyze
from engine.compiler.build import build
from engine.compiler.ir import Shaped, located_error

FORMATS = ("torch-export", "onnx")
_EXTERNAL_DATA_BYTES = 3 << 29  # 1.5 GiB: beyond this, ONNX weights go to a side file


def export_spec(spec: str | Path, overrides: list[str] | dict | None = None,
                fmt: str = "torch-export", output: str | Path = "model.pt2",
                network: str | None = None, optimize: bool = False) -> Path:
    """Build `spec` (with `--set` style overrides), export it as `fmt` to `output`; return the path.

    `optimize=True` exports the inference build of engine/compiler/optimize.py without its
    oneDNN packing, which exporters do not know: batch norms folded into the conv or linear before
    them, the others made a multiply-add.

    Errors (an unknown format, a multi-network spec, a missing onnx package, an exporter that
    refuses the model) are raised as SpecError with a one-line message and a hint.
    """
    if fmt not in FORMATS:
        raise located_error(f"unknown export format '{fmt}'", hint=f"use one of: {', '.join(FORMATS)}")
    shaped = analyze(spec, overrides)
    model, inputs, outputs, name = _one_network(shaped, network, optimize)
    args = tuple(_example(info) for info in inputs.values())
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torch-export":
        program = _torch_export(model, args, name)
        torch.export.save(program, str(path))
    else:
        _onnx_export(model, args, path, name, list(inputs), outputs)
    return path


def _one_network(shaped: Shaped, network: str | None,
                 optimize: bool = False) -> tuple[nn.Module, dict, list[str], str]:
    spec = shaped.spec
    names = list(spec.networks)
    if network is None and spec.multi:
        raise located_error(f"spec '{spec.name}' has {len(names)} networks ({', '.join(names)}); an "
                            "export needs one module", spec.file or None,
                            hint=f"from Python: engine.views.export.export_spec(..., network='{names[0]}')")
    if network is not None and network not in spec.networks:
        raise located_error(f"spec '{spec.name}' has no network '{network}'", spec.file or None,
                            hint=f"its networks are: {', '.join(names)}")
    name = network or names[0]
    model = build(shaped)
    if optimize:
        from engine.compiler.optimize import optimize as optimize_model
        model = optimize_model(model, shaped, pack=False, inplace=True)[0]
    if spec.multi:
        model = model[name]
    return model.eval(), shaped.inputs[name], _flat_outputs(shaped, name), name


def _flat_outputs(shaped: Shaped, network: str) -> list[str]:
    """Output names, one per tensor (a multi-output node gives `name.0`, `name.1` ...)."""
    prefix = f"{network}." if shaped.spec.multi else ""
    out = []
    for name, ref in shaped.spec.networks[network].outputs.items():
        source = shaped.nodes.get(prefix + ref.node)
        count = len(source.outputs) if ref.output is None and source is not None else 1
        out += [name] if count == 1 else [f"{name}.{k}" for k in range(count)]
    return out


def _example(info) -> torch.Tensor:
    dtype = getattr(torch, info.dtype)
    if dtype.is_floating_point:
        return torch.randn(info.shape, dtype=dtype)
    return torch.zeros(info.shape, dtype=dtype)


def _torch_export(model: nn.Module, args: tuple, name: str) -> Any:
    try:
        return torch.export.export(model, args)
    except Exception as err:  # the exporter's reason, in one line
        if os.environ.get("ENGINE_DEBUG"):
            raise
        raise located_error(f"torch.export could not trace network '{name}': {_first_line(err)}",
                            hint="rerun with ENGINE_DEBUG=1 for PyTorch's full report") from err


def _onnx_export(model: nn.Module, args: tuple, path: Path, name: str, inputs: list[str],
                 outputs: list[str]) -> None:
    missing = [m for m in ("onnx", "onnxscript") if not _importable(m)]
    if missing:
        raise located_error(f"ONNX export needs the {' and '.join(missing)} package"
                            f"{'s' if len(missing) > 1 else ''}",
                            hint=f"pip install {' '.join(missing)}   (or: pip install -e '.[dev]')")
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        torch.onnx.export(model, args, str(path), dynamo=True, verbose=False,
                          input_names=inputs, output_names=outputs,
                          external_data=size > _EXTERNAL_DATA_BYTES)
    except Exception as err:
        if os.environ.get("ENGINE_DEBUG"):
            raise
        raise located_error(f"ONNX export of network '{name}' failed: {_first_line(err)}",
                            hint="rerun with ENGINE_DEBUG=1 for PyTorch's full report") from err


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
