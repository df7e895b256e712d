"""The base of every training procedure: networks, their optimizers, and how a step updates them.

A procedure owns what is specific to a kind of training (which networks, which losses, how
many optimizer steps per batch: a GAN steps two); the runner owns what is common (data order,
seeding, checkpoints, evaluation schedule, logging, distribution). `optimize(loss, name)` does
the backward pass, gradient clipping, the optimizer and schedule step and the EMA update for
one named optimizer, so custom steps stay a few lines.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from engine.compiler.ir import Diagnostic
from engine.train.losses import make_loss
from engine.train.optim import make_optimizer, make_scheduler


class Procedure:
    """One optimizer over `model` by default; subclasses override `setup` for several.

    `OPTIONS` are the recipe's `procedure: {name: ..., key: value}` settings with their defaults
    (the recipe validator rejects any other key, and any value outside `CHOICES`);
    `self.options` holds the merged values.
    """

    OPTIONS: dict = {}
    CHOICES: dict[str, tuple] = {}  # option -> its allowed values, where they are a fixed set
    reports_accuracy = True  # train_step returns "accuracy" (a column of metrics.csv)
    tracks_best = True  # the lowest validation loss (or best accuracy) is saved as best.pt
    best_metric: str | None = None  # else best.pt is the highest value of this validation figure
    DEFAULT_LOSS: dict = {"name": "cross_entropy"}
    # the spec it trains: "one" network, "several" (a spec's `networks:`), or "any"
    networks = "one"
    # the optimizer whose steps update the recipe's `ema` copy: a generative pair averages its
    # generator (the networks it samples from), not the one-optimizer default
    ema_after = "model"

    @classmethod
    def spec_problems(cls, shaped, classes: int) -> list[tuple[str, str]]:
        """(message, hint) for a spec this procedure cannot train with data of `classes`
        classes (0: the data has none), found when the recipe is validated."""
        return []

    @classmethod
    def recipe_problems(cls, doc, shaped) -> list[Diagnostic]:
        """Located problems of the recipe keys this procedure reads, against its spec: by
        default `aux_weights:` is refused (only a procedure that trains auxiliary outputs,
        `classify`, reads it)."""
        if doc.get("aux_weights") is None:
            return []
        return [Diagnostic("this procedure trains no auxiliary outputs: `aux_weights:` does not apply",
                           doc.key_loc("aux_weights"), "aux_weights",
                           "remove aux_weights:, or train with procedure: classify")]

    def __init__(self, recipe, model: nn.Module, device: torch.device, total_steps: int):
        self.recipe, self.device = recipe, device
        self.options = {**self.OPTIONS, **(recipe.get("options") or {})}
        self.model = model
        self.loss = make_loss(recipe.get("loss") or self.DEFAULT_LOSS)
        self.clip = recipe.get("clip_grad")
        self.amp = bool(recipe.get("amp"))
        self.dtype = autocast_dtype(recipe.get("precision"), self.amp, device)
        self.amp = self.dtype is not None
        # `accumulate: N`: the runner sets `boundary` on the last micro-batch of each group; the
        # gradients of the N micro-batches add up (each loss scaled by 1/N) before one step
        self.accumulate = int(recipe.get("accumulate") or 1)
        self.boundary = True
        self._pending: dict[str, bool] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict = {}
        self.setup(total_steps)
        ema = recipe.get("ema")
        # use_buffers: batch-norm statistics follow the average too (else the EMA copy keeps
        # the running statistics of step 0 and evaluates badly)
        self.ema = AveragedModel(self.unwrapped, multi_avg_fn=get_ema_multi_avg_fn(ema["decay"]),
                                 use_buffers=True) if ema else None

    @property
    def unwrapped(self) -> nn.Module:
        """The model without a DistributedDataParallel wrapper (for saving and evaluating)."""
        return getattr(self.model, "module", self.model)

    def setup(self, total_steps: int) -> None:
        self.add_optimizer("model", self.recipe["optimizer"], self.model, total_steps)

    def add_optimizer(self, name: str, cfg: dict, module: nn.Module, total_steps: int) -> None:
        self.optimizers[name] = make_optimizer(cfg, module)
        if self.dtype == torch.float16:  # fp16 gradients underflow without loss scaling
            self.scalers[name] = torch.amp.GradScaler(self.device.type)
        scheduler = make_scheduler(self.recipe.get("scheduler"), self.optimizers[name], total_steps)
        if scheduler is not None:
            self.schedulers[name] = scheduler

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def optimize(self, loss: Tensor, name: str = "model") -> None:
        """Backward (scaled by 1/accumulate, and by the fp16 GradScaler where there is one);
        on a group's last micro-batch: unscale, clip, step the optimizer, schedule and EMA."""
        optimizer, scaler = self.optimizers[name], self.scalers.get(name)
        if not self._pending.get(name):
            optimizer.zero_grad(set_to_none=True)
        if self.accumulate > 1:
            loss = loss / self.accumulate
        (scaler.scale(loss) if scaler is not None else loss).backward()
        self._pending[name] = not self.boundary
        if not self.boundary:
            return
        if self.clip:
            if scaler is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            params = [p for g in optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.clip)
        if scaler is not None:
            scaler.step(optimizer)  # skipped where the gradients hold inf/NaN
            scaler.update()
        else:
            optimizer.step()
        if name in self.schedulers:
            self.schedulers[name].step()
        if self.ema is not None and name == self.ema_after:
            self.ema.update_parameters(self.unwrapped)

    def eval_model(self) -> nn.Module:
        inference = getattr(self, "inference_model", None)  # set by optimize_for_inference
        if inference is not None:
            return inference
        return self.ema.module if self.ema is not None else self.unwrapped

    def optimize_for_inference(self, shaped, pack: bool = True) -> str:
        """`engine infer --optimize` (or the recipe's `infer: {optimize: true}`): from here on
        eval_model() is the inference-only build of engine/compiler/optimize.py of the model it
        was; returns the report of what was folded and fused."""
        from engine.compiler.optimize import optimize
        self.inference_model, report = optimize(self.eval_model(), shaped, pack=pack)
        return report.text()

    def train_mode(self) -> None:
        """Called at the start of every epoch (a procedure with frozen parts keeps them in eval)."""
        self.model.train()

    def start_training(self) -> None:
        """Called once before the first step of a fresh (not resumed) run."""

    def lr(self) -> float:
        return next(iter(self.optimizers.values())).param_groups[0]["lr"]

    def aggregate(self, sums: dict[str, float], count: int) -> dict[str, float]:
        """A split's figures from eval_step's values summed over it: by default the mean per
        sample (a language model divides its summed log-likelihood by the tokens instead)."""
        return {k: v / max(count, 1) for k, v in sums.items()}

    # ---- what subclasses write ------------------------------------------------------------
    def train_step(self, batch) -> dict[str, float]:
        raise NotImplementedError

    def eval_step(self, batch, metrics: list) -> dict[str, Tensor]:
        """Per-sample values of the loss and of each metric, for one batch."""
        raise NotImplementedError

    # ---- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"model": self.unwrapped.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "scalers": {k: s.state_dict() for k, s in self.scalers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.unwrapped.load_state_dict(state["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        for k, s in self.scalers.items():
            if k in (state.get("scalers") or {}):
                s.load_state_dict(state["scalers"][k])


def autocast_dtype(precision: str | None, amp: bool, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision:` (fp32: none); `amp: true` without it means fp16 on
    CUDA, bf16 on a CPU with native bf16 (AVX-512 BF16 or AMX) and on other devices, and fp32 on
    a CPU without (where bf16 is emulated: a conv step measured 22x slower than fp32), with a
    note saying so. fp16 off CUDA is a clear error (no GradScaler, slow or missing kernels)."""
    if precision is None and amp and device.type == "cpu" and not cpu_has_bf16():
        print("amp: true trains in fp32 here: this CPU has no native bf16 (AVX-512 BF16 or AMX), "
              "where bf16 autocast is emulated and many times slower (precision: bf16 forces it)",
              file=sys.stderr, flush=True)
        return None
    if precision is None:
        precision = ("fp16" if device.type == "cuda" else "bf16") if amp else "fp32"
    if precision == "fp16" and device.type != "cuda":
        from engine.compiler.ir import located_error
        raise located_error(f"precision fp16 on {device.type}: fp16 needs a CUDA GPU; use bf16 on CPU",
                            None, "precision", "write precision: bf16 (or fp32), or train on --device cuda")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (torch's own check; False if it has none)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
