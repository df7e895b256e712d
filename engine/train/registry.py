"""Named registries for everything a recipe names: procedures, datasets, transforms, optimizers,
schedulers, losses, metrics. (Primitive blocks have theirs in `blocks/registry.py`, which also
holds the `Registry` class all of them are.)

A duplicate name is an error; an unknown name suggests the close ones. YAML never reaches
`eval`, `globals()` or dotted imports: it can only name what is registered here.
"""

from __future__ import annotations

from engine.blocks.registry import Registry

PROCEDURES = Registry("procedure")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
LOSSES = Registry("loss")
METRICS = Registry("metric")
