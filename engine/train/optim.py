"""Optimizers and learning-rate schedules by registered name, parameter groups and freezing by glob.

`optimizer: {name: adamw, lr: 0.001, weight_decay: 0.05, groups: [{params: "fc.*", lr: 0.01}]}`
`scheduler: {name: cosine, warmup_steps: 100}` (schedules step once per optimizer step).
`freeze: ["features.*"]` stops training the matching parameters (names as in the state_dict).
"""

from __future__ import annotations

import fnmatch
import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from engine.compiler.ir import located_error
from engine.train.arguments import at_least
from engine.train.registry import OPTIMIZERS, SCHEDULERS

OPTIMIZERS.add("sgd", torch.optim.SGD)
OPTIMIZERS.add("adam", torch.optim.Adam)
OPTIMIZERS.add("adamw", torch.optim.AdamW)
OPTIMIZERS.add("rmsprop", torch.optim.RMSprop)


def freeze(model: nn.Module, patterns: list[str]) -> int:
    """Freeze parameters whose names match any glob; returns how many tensors were frozen."""
    count = 0
    for name, p in model.named_parameters():
        if any(fnmatch.fnmatchcase(name, pat) for pat in patterns):
            p.requires_grad_(False)
            count += 1
    if patterns and count == 0:
        raise located_error(f"`freeze: {patterns}` matches no parameter", "recipe",
                            "freeze", "patterns match state_dict names, e.g. features.*")
    return count


def make_optimizer(cfg: dict, model: nn.Module) -> torch.optim.Optimizer:
    args = {k: v for k, v in cfg.items() if k not in ("name", "groups")}
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups, taken = [], set()
    for group in cfg.get("groups") or []:
        chosen = [p for n, p in params if fnmatch.fnmatchcase(n, group["params"])
                  and id(p) not in taken]
        if not chosen:
            raise located_error(f"optimizer group `params: {group['params']}` matches "
                                "no trainable parameter", "recipe", "optimizer.groups",
                                "patterns match state_dict names, e.g. fc.*")
        taken.update(id(p) for p in chosen)
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": chosen})
    rest = [p for _, p in params if id(p) not in taken]
    if rest:
        groups.insert(0, {"params": rest})
    return OPTIMIZERS.get(cfg["name"])(groups, **args)


@SCHEDULERS.register("constant")
@at_least(warmup_steps=0)
def constant(optimizer, total_steps: int, warmup_steps: int = 0) -> LambdaLR:
    return LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup_steps) if warmup_steps else 1.0)


@SCHEDULERS.register("cosine")
@at_least(warmup_steps=0, min_factor=0)
def cosine(optimizer, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> LambdaLR:
    """Linear warm-up, then cosine decay to `min_factor` x the base rate at the last step."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return LambdaLR(optimizer, factor)


@SCHEDULERS.register("step")
@at_least(every=1)
def step(optimizer, total_steps: int, every: int, gamma: float = 0.1) -> LambdaLR:
    return LambdaLR(optimizer, lambda s: gamma ** (s // every))


@SCHEDULERS.register("inverse_sqrt")
@at_least(warmup_steps=1)
def inverse_sqrt(optimizer, total_steps: int, warmup_steps: int = 4000) -> LambdaLR:
    """The Transformer's schedule: linear warm-up, then decay with 1/sqrt(step)."""
    return LambdaLR(optimizer, lambda s: min((s + 1) / warmup_steps,
                                             (warmup_steps / (s + 1)) ** 0.5))


def make_scheduler(cfg: dict | None, optimizer, total_steps: int):
    if not cfg:
        return None
    args = {k: v for k, v in cfg.items() if k != "name"}
    return SCHEDULERS.get(cfg["name"])(optimizer, total_steps, **args)
