"""A declarative graph-config engine: YAML specs compiled into PyTorch modules.

    import engine
    model = engine.build("resnet50", num_classes=10)
"""

from engine.compiler import analyze, build, resolve_spec
from engine.compiler.ir import SpecError
from engine.compiler.statedict import load_reference_state_dict, rename_state_dict

__all__ = ["analyze", "build", "resolve_spec", "SpecError", "load_reference_state_dict",
           "rename_state_dict"]
