"""Your own blocks: Python modules that register blocks with `engine.register_block`.

A spec never imports code by itself: a block that is not bundled exists only once a module that
registers it has been imported, in one of three ways:

- from Python, by importing that module before building (`import my_blocks; engine.build(...)`);
- from the command line, `engine -p my_blocks.py build my_spec.yaml` (a file) or
  `engine -p my_package.blocks ...` (an importable module), as `pytest -p` does;
- from an installed package, through the entry-point group `engine.blocks`
  (`[project.entry-points."engine.blocks"] my_blocks = "my_package.blocks"` in its
  pyproject.toml): every such module is imported the first time the registry is read.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

GROUP = "engine.blocks"  # the entry-point group of installed block plugins


class PluginError(Exception):
    """A plugin that cannot be found or imported; the message says which and why."""


def load_module(name: str) -> None:
    """Import a plugin by module name (`my_package.blocks`) or file path (`./my_blocks.py`)."""
    if name.endswith(".py") or "/" in name or "\\" in name:
        _load_file(Path(name))
        return
    try:
        importlib.import_module(name)
    except ImportError as err:
        raise PluginError(f"plugin '{name}' cannot be imported: {err} (give a file, "
                          f"'-p ./{name.replace('.', '/')}.py', or install the package)") from None


def _load_file(path: Path) -> None:
    if not path.is_file():
        raise PluginError(f"plugin file '{path}' does not exist")
    module_name = f"engine_plugin_{path.stem}"
    if module_name in sys.modules:  # `-p` twice, or also listed as an entry point
        return
    spec = importlib.util.spec_from_file_location(module_name, path.resolve())
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # inspect (and so codegen) finds the source through it
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[module_name]
        raise PluginError(f"plugin file '{path}' failed while importing: "
                          f"{type(err).__name__}: {err}") from None


_scanned = False  # the installed plugins are looked up once per process


def load_entry_points() -> list[str]:
    """Import every installed module of the `engine.blocks` entry-point group (the first call
    only; later ones return []); the names imported."""
    global _scanned
    if _scanned:
        return []
    _scanned = True
    loaded = []
    for ep in entry_points(group=GROUP):
        try:
            ep.load()
        except Exception as err:
            raise PluginError(f"installed plugin '{ep.name}' ({ep.value}, entry point group "
                              f"'{GROUP}') failed while importing: {type(err).__name__}: {err}") \
                from None
        loaded.append(ep.name)
    return loaded
