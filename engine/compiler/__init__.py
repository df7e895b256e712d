"""The pipeline, stage by stage: this file is the table of contents of the compiler.

    load + merge -> resolve -> validate -> shapes -> build
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from engine.compiler.build import build as build_modules
from engine.compiler.ir import Shaped, Spec, SpecError, dedupe
from engine.compiler.merge import find_spec, load_merged, parse_overrides
from engine.compiler.resolve import resolve
from engine.compiler.shapes import infer_shapes
from engine.compiler.validate import validate


def resolve_spec(spec: str | Path, overrides: list[str] | dict | None = None) -> Spec:
    """Load, merge, resolve and validate a spec; raise SpecError with every error found."""
    path = find_spec(str(spec))
    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(list(overrides))
    doc = load_merged(path, overrides)
    resolved, errors = resolve(doc, str(path))
    errors = dedupe(errors + validate(resolved))
    if errors:
        raise SpecError(errors)
    return resolved


def analyze(spec: str | Path, overrides: list[str] | dict | None = None) -> Shaped:
    """Everything up to shapes: what summaries, diagrams and diffs need (no weights allocated)."""
    resolved = resolve_spec(spec, overrides)
    shaped, errors = infer_shapes(resolved)
    if errors:
        raise SpecError(errors)
    return shaped


def build(spec: str | Path, device: str = "cpu", **params: Any) -> nn.Module:
    """Build a spec into an nn.Module (an nn.ModuleDict for multi-network specs).

    Keyword arguments override the spec's params: `build("resnet50", num_classes=10)`.
    """
    return build_modules(analyze(spec, params), device)


__all__ = ["analyze", "build", "resolve_spec", "SpecError"]
