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

from engine.blocks.registry import register as register_block  # noqa: E402
from engine.compiler import analyze, resolve_spec  # noqa: E402
from engine.compiler.ir import SpecError  # noqa: E402
from engine.compiler.statedict import load_reference_state_dict, rename_state_dict  # noqa: E402


def build(spec, device: str = "cpu", weights: str | None = None, **params):
    """Build a spec into an nn.Module (an nn.ModuleDict for multi-network specs).

    Keyword arguments override the spec's params: `build("resnet50", num_classes=10)`.
    `weights="torchvision"` (or `"torchvision:IMAGENET1K_V2"`, or a checkpoint file or glob: a
    run's `checkpoints/last.pt`) loads every entry whose key and shape agree; the others keep
    their fresh initialisation (engine/train/weights.py; `engine build SPEC --weights ...`
    prints which).
    """
    from engine.compiler import build as build_spec
    if weights is None:
        return build_spec(spec, device, **params)
    from engine.compiler.build import build as build_modules
    from engine.train.weights import load_weights
    shaped = analyze(spec, params)
    model = build_modules(shaped, device)
    load_weights(model, shaped, weights)
    return model


__all__ = ["analyze", "build", "resolve_spec", "SpecError", "load_reference_state_dict",
           "rename_state_dict", "register_block"]
