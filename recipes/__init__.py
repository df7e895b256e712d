"""The bundled recipes, installed as the package data of `engine.recipes` (see pyproject.toml).

This file only makes the folder a package, so that `importlib.resources` finds it in an editable
install (where it stays here) and in a wheel (where it ships inside `engine/`). Recipes are the
`*.yaml` files beside it: `engine list --recipes` names them.
"""
