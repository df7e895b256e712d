"""Training procedures, one file each, registered by name (`procedure: classify`)."""

from engine.train.procedures import (  # noqa: F401 - imported for their registration
    classify,
    cyclegan,
    diffusion,
    gan,
    pix2pix,
    reconstruct,
    segment,
    seq2seq,
    sequence,
    srgan,
    super_resolve,
    vqvae,
)
from engine.train.procedures.base import Procedure  # noqa: F401
