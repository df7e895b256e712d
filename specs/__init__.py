"""The bundled specs, installed as the package data of `engine.specs` (see pyproject.toml).

This file only makes the folder a package, so that `importlib.resources` finds it in an editable
install (where it stays here) and in a wheel (where it ships inside `engine/`). Specs are the
`*.yaml` files beside it: `engine list` names them.
"""
