"""The shared side of generative procedures: what `engine sample` and `engine eval` call.

Every generative procedure trains on `(image, label)` batches of images in [0, 1] and offers
`sample(n, generator, labels)` (images in [0, 1]) and, for autoencoders, `reconstruct(images)`.
Networks are those of the spec (`model["encoder"]`, `model["decoder"]`, ...); their input
shapes come from the shaped spec, so a procedure never restates a size the spec already says.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

from engine.compiler.ir import located_error
from engine.train.evaluation.metrics import psnr
from engine.train.procedures.base import Procedure


class Generative(Procedure):
    """A procedure whose model makes images; subclasses say how."""

    can_sample = True
    networks = "several"
    reports_accuracy = False
    can_reconstruct = False

    def network(self, name: str, model: nn.Module | None = None) -> nn.Module:
        model = self.unwrapped if model is None else model
        if not isinstance(model, nn.ModuleDict) or name not in model:
            have = list(model) if isinstance(model, nn.ModuleDict) else ["(one network)"]
            raise located_error(
                f"procedure '{self.recipe['procedure']}' needs a network named '{name}'; the "
                f"spec has {', '.join(have)}", self.recipe.file, "spec",
                f"use a spec with `networks: {{{name}: ...}}`")
        return model[name]

    def input_shape(self, network: str, name: str) -> tuple[int, ...]:
        """The shape of a network input, without its batch dimension."""
        return tuple(self.recipe.shaped.inputs[network][name].shape[1:])

    @property
    def conditional(self) -> bool:
        """Whether the decoder (or the generator) takes a class label."""
        return False

    @staticmethod
    def takes(module: nn.Module, argument: str) -> bool:
        return argument in inspect.signature(module.forward).parameters

    # ---- what `engine sample` and `engine eval` call ------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, labels: Tensor | None = None) -> Tensor:
        raise located_error(
            f"procedure '{self.recipe['procedure']}' does not generate new images",
            self.recipe.file, "procedure", "use `engine sample --reconstruct`")

    @torch.no_grad()
    def reconstruct(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        raise located_error(
            f"procedure '{self.recipe['procedure']}' does not reconstruct images",
            self.recipe.file, "procedure", "leave out --reconstruct to draw samples")

    def image_eval(self, recon: Tensor, images: Tensor, loss: Tensor) -> dict[str, Tensor]:
        return {"loss": loss, "psnr": psnr(recon, images)}
