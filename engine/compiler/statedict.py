"""Reference weights: translate a reference implementation's state_dict keys by a spec's `rename:` map.

`rename:` maps key prefixes of the reference (left) to the engine's (right), e.g.
`{"features.denseblock1": "blocks.0"}`. Longest prefix wins; other keys pass unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn


def rename_state_dict(state_dict: Mapping[str, Tensor], rename: Mapping[str, str]) -> dict[str, Tensor]:
    prefixes = sorted(rename, key=len, reverse=True)
    out = {}
    for key, value in state_dict.items():
        out[_rename_key(key, prefixes, rename)] = value
    return out


def _rename_key(key: str, prefixes: list[str], rename: Mapping[str, str]) -> str:
    for prefix in prefixes:
        if key == prefix or key.startswith(prefix + "."):
            return rename[prefix] + key[len(prefix):]
    return key


def load_reference_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor],
                              spec: str | Path, strict: bool = True):
    """Load a reference implementation's weights into a model built from `spec`."""
    from engine.compiler import resolve_spec
    rename = resolve_spec(spec).rename
    return model.load_state_dict(rename_state_dict(state_dict, rename), strict=strict)
