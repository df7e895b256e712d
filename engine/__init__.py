"""A declarative graph-config engine: YAML specs compiled into PyTorch modules.

    import engine
    model = engine.build("resnet50", num_classes=10)
    model = engine.build("resnet50", weights="torchvision", num_classes=10)  # fc starts fresh

Your own blocks: `@engine.register_block("name", category="activation", ...)` on an nn.Module
class (blocks/plugins.py says how the command line and installed packages load them).
"""

import pathlib as _pathlib

# `engine.blocks`, `engine.specs` and `engine.recipes` are the repository's top-level folders,
# mapped into the package by pyproject.toml. Installed (editable or from a wheel) they are found
# as mapped; a source tree used without installing it (PYTHONPATH=checkout) finds them beside
# engine/ through this extra search path.
_here = _pathlib.Path(__file__).resolve().parent
if not (_here / "blocks").is_dir():
    __path__.append(str(_here.parent))

# The public names are imported on first use (PEP 562): `import engine`, and with it
# `engine --help`, then costs no torch import (seconds of CPU), only what a command uses.
_LAZY = {
    "register_block": ("engine.blocks.registry", "register"),
    "analyze": ("engine.compiler", "analyze"),
    "resolve_spec": ("engine.compiler", "resolve_spec"),
    "SpecError": ("engine.compiler.ir", "SpecError"),
    "load_reference_state_dict": ("engine.compiler.statedict", "load_reference_state_dict"),
    "rename_state_dict": ("engine.compiler.statedict", "rename_state_dict"),
    "optimize": ("engine.compiler.optimize", "optimize"),
}


def __getattr__(name: str):
    """`engine.analyze`, `engine.register_block`, ...: imported from their module when first read."""
    if name not in _LAZY:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def build(spec, device: str = "cpu", weights: str | None = None, optimize: bool = False,
          **params):
    """Build a spec into an nn.Module (an nn.ModuleDict for multi-network specs).

    Keyword arguments override the spec's params: `build("resnet50", num_classes=10)`.
    `weights="torchvision"` (or `"torchvision:IMAGENET1K_V2"`, or a checkpoint file or glob: a
    run's `checkpoints/last.pt`) loads every entry whose key and shape agree; the others keep
    their fresh initialisation (engine/train/weights.py; `engine build SPEC --weights ...`
    prints which). `optimize=True` returns the inference-only build of
    engine/compiler/optimize.py (batch norms folded, activations fused, convs packed); for its
    report, call `engine.optimize(model, engine.analyze(spec))` on a plain build.
    """
    from engine.compiler import analyze
    from engine.compiler import build as build_spec
    if weights is None and not optimize:
        return build_spec(spec, device, **params)
    from engine.compiler.build import build as build_modules
    shaped = analyze(spec, params)
    model = build_modules(shaped, device)
    if weights is not None:
        from engine.train.weights import load_weights
        load_weights(model, shaped, weights)
    if optimize:
        from engine.compiler.optimize import optimize as optimize_model
        model = optimize_model(model, shaped, inplace=True)[0]
    return model


__all__ = ["analyze", "build", "optimize", "resolve_spec", "SpecError", "load_reference_state_dict",
           "rename_state_dict", "register_block"]
