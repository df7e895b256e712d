"""Primitive blocks: the vocabulary specs are written in. Importing this package registers them."""

from blocks import (  # noqa: F401  (imported for their @register side effects)
    activation,
    attention,
    conv,
    gan_layers,
    generative_layers,
    latent,
    linear,
    merge,
    norm,
    parameter,
    pool,
    recurrent,
    regularize,
    resample,
    sequence,
    sr_layers,
    tensor_ops,
)
from blocks.registry import REGISTRY, all_blocks, lookup, register  # noqa: F401
