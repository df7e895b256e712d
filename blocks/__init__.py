"""Primitive blocks: the vocabulary specs are written in. Importing this package registers them."""

from engine.blocks import (  # noqa: F401  (imported for their @register side effects)
    activation,
    attention,
    color,
    conv,
    encoding,
    latent,
    linear,
    merge,
    norm,
    parameter,
    pool,
    recurrent,
    regularize,
    resample,
    style,
    tensor_ops,
    transformer,
)
from engine.blocks.registry import REGISTRY, all_blocks, lookup, register  # noqa: F401
