"""Training procedures, one file each, registered by name (`procedure: classify`)."""

from engine.procedures import classify, diffusion, reconstruct, vqvae  # noqa: F401
from engine.procedures import gan  # noqa: F401
from engine.procedures.base import Procedure  # noqa: F401
