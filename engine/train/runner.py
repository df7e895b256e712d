"""The training runner: `engine train`, `engine eval`, resumption, run folders, DDP.

A run folder holds the fully resolved recipe and spec (with the spec's content hash), a metrics
CSV (one row per epoch), a loss/metric plot, and checkpoints written atomically. A run killed at
any moment resumes from its last checkpoint and continues identically: data order and every
random draw are functions of (seed, epoch, batch), and the checkpoint holds the optimizer,
schedule, EMA and the partial epoch's running sums.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from torch import nn

from engine.compiler import analyze
from engine.compiler.dump import resolved_dict
from engine.compiler.ir import located_error
from engine.train import distributed, judges
from engine.train.checkpoint import (
    fits,
    load_checkpoint,
    save_checkpoint,
    sweep_temporaries,
    write_text_atomic,
)
from engine.train.data import build_dataset, data_root
from engine.train.data.transforms import build_transform
from engine.train.evaluation.digit_fd import DigitJudge
from engine.train.loader import eval_batches, num_batches, train_batches
from engine.train.optim import freeze
from engine.train.progress import Progress
from engine.train.recipe import Recipe
from engine.train.registry import PROCEDURES
from engine.train.tracking import Tracker, write_status


@dataclass
class Position:
    """Where a run is: the next batch to train, and the running sums of the current epoch."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    acc_sum: float = 0.0
    seen: int = 0
    rows: int = 0  # metric rows written (a resumed run truncates the CSV back to these)
    extra_sums: dict = field(default_factory=dict)  # other train_step values (a GAN's d_loss)
    best: float = -math.inf
    stop_best: float | None = None  # early_stop: the best value of its metric so far
    stale: int = 0  # evaluations since it last improved
    stopped: str = ""  # why the run stopped early (a resumed run does not train further)


class Run:
    """One training run of a recipe, in its folder.

    `weights`: start from the recipe's `weights:` (engine/train/weights.py); False where the run
    then loads a checkpoint of its own (resuming, `engine eval`, `infer`, `sample`).
    """

    def __init__(self, recipe: Recipe, folder: Path, device: str | None = None,
                 weights: bool = True):
        self.recipe, self.folder = recipe, folder
        self.dist = distributed.current()
        chosen = recipe.get("device")  # --device wins over the recipe's `device:`
        self.device = distributed.pick_device(device or (None if chosen in (None, "auto") else chosen),
                                              "--device" if device else "device")
        torch.manual_seed(recipe["seed"])
        self.shaped = recipe.shaped = recipe.shaped or analyze(recipe.spec_path,
                                                               recipe.spec_overrides)
        from engine.compiler.build import build
        model = build(self.shaped, device=str(self.device))
        self.channels_last = bool(recipe.get("channels_last"))
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.weights_report = self.start_weights(model) if weights and recipe["weights"] else None
        freeze(model, recipe["freeze"])
        self.train_set, self.eval_sets = self.datasets()
        batch = recipe["data"].get("batch_size", 64)
        per_epoch = num_batches(len(self.train_set), batch)
        self.accumulate = recipe.get("accumulate", 1)  # steps count optimizer steps
        per_epoch = math.ceil(per_epoch / self.accumulate)
        self.epochs = recipe["epochs"] or math.ceil(recipe["steps"] / per_epoch)
        self.total_steps = recipe["steps"] or self.epochs * per_epoch
        if recipe.get("compile"):  # in place: state_dict keys stay those of the plain model
            for net in (model.values() if isinstance(model, nn.ModuleDict) else [model]):
                net.compile()
        model = distributed.wrap(model, self.dist)
        self.procedure = PROCEDURES.get(recipe["procedure"])(recipe, model, self.device,
                                                             self.total_steps)
        self.position = Position()
        self.tracker = Tracker()  # TensorBoard: live only while the main process trains

    def start_weights(self, model: nn.Module) -> str:
        """Load the recipe's `weights:` into the fresh model (before DDP wraps it and before the
        procedure copies it for EMA) and say what loaded; the text goes into the run folder."""
        from engine.train.weights import load_weights
        report = load_weights(model, self.shaped, self.recipe["weights"],
                              self.recipe.doc.value_loc("weights")).text()
        if self.dist.is_main:
            print(report, flush=True)
        return report

    def datasets(self):
        data, seed = self.recipe["data"], self.recipe["seed"]
        root, args = data.get("root"), dict(data.get("args") or {})
        transforms = data.get("transforms") or {}
        train_tf = build_transform(list(transforms.get("train") or []), "data.transforms.train")
        eval_tf = build_transform(list(transforms.get("eval") or []), "data.transforms.eval")
        folder = data_root(root)
        train = build_dataset(data["dataset"], folder, "train", seed, train_tf, args)
        evals = {s: build_dataset(data["dataset"], folder, s, seed, eval_tf, args)
                 for s in ("val", "test")}
        return train, evals

    # ---- the loop ---------------------------------------------------------------------------
    def train(self) -> dict:
        self.cpu_start = time.process_time()
        if self.dist.is_main:
            self.write_header()
            write_status(self.folder, "running", cpu_start=self.cpu_start)
            self.tracker = Tracker(self.folder, self.recipe.get("log_every_steps", 10),
                                   self.position.step)
        recipe, pos = self.recipe, self.position
        if pos.step == 0 and pos.batch == 0 and pos.epoch == 0:
            self.procedure.start_training()
        every = recipe.get("checkpoint", {}).get("every_steps", 0)
        if pos.stopped and self.dist.is_main:
            print(f"the run stopped early: {pos.stopped}", flush=True)
        try:
            while pos.epoch < self.epochs and pos.step < self.total_steps and not pos.stopped:
                self.train_epoch(every)
                if pos.step >= self.total_steps and pos.batch != 0:
                    pos.batch = 0  # a `steps:` run ends inside an epoch: close it here
                self.end_epoch()
        except BaseException as error:
            # `engine runs` then says why the run ended instead of calling it killed
            if self.dist.is_main:
                state = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
                reason = (str(error).splitlines() or [type(error).__name__])[0]
                write_status(self.folder, state, reason=reason, cpu_start=self.cpu_start)
            raise
        return self.finish()

    def train_epoch(self, every_steps: int) -> None:
        pos, data = self.position, self.recipe["data"]
        batch_size = data.get("batch_size", 64)
        total = num_batches(len(self.train_set), batch_size)
        progress = Progress(total, f"epoch {pos.epoch + 1}/{self.epochs}", pos.batch,
                            self.dist.is_main)
        self.procedure.train_mode()
        batches = train_batches(self.train_set, batch_size, self.recipe["seed"], pos.epoch,
                                pos.batch, self.dist.rank, self.dist.world, data.get("workers", 0))
        for index, batch in batches:
            batch = _to(batch, self.device, self.channels_last)
            # `accumulate: N`: N batches per optimizer step (an epoch's last group may be shorter)
            stepping = (index + 1) % self.accumulate == 0 or index + 1 == total
            self.procedure.boundary = stepping
            values = self.procedure.train_step(batch)
            self.check_finite(values["loss"], pos.epoch, index)
            n = _batch_size(batch)
            pos.batch, pos.step = index + 1, pos.step + stepping
            pos.loss_sum += values["loss"] * n
            pos.acc_sum += values.get("accuracy", 0.0) * n
            for key, value in values.items():
                if key not in ("loss", "accuracy"):
                    pos.extra_sums[key] = pos.extra_sums.get(key, 0.0) + value * n
            pos.seen += n
            progress.update(n * self.dist.world, loss=values["loss"], lr=self.procedure.lr())
            self.tracker.step(pos.step, values["loss"], self.procedure.lr())
            if stepping and every_steps and pos.step % every_steps == 0:
                self.save("last")
            if pos.step >= self.total_steps:
                break
        progress.close()
        if pos.batch >= total:
            pos.batch = 0

    def check_finite(self, loss: float, epoch: int, batch: int) -> None:
        """Stop at the first NaN or infinite loss, before it reaches a checkpoint: the last one
        saved still holds the last good state (a recipe may opt out: `stop_on_nonfinite: false`)."""
        if math.isfinite(loss) or not self.recipe["stop_on_nonfinite"]:
            return
        last = self.folder / "checkpoints" / "last.pt"
        kept = f"{last} keeps the last good state" if last.exists() else "no checkpoint was saved yet"
        raise located_error(
            f"the training loss is {loss} at step {self.position.step + 1} (epoch {epoch + 1}, "
            f"batch {batch + 1}): training stopped", self.recipe.file,
            hint=f"{kept}; lower the learning rate or set clip_grad, or write "
                 "`stop_on_nonfinite: false` to train on")

    def end_epoch(self) -> None:
        pos, recipe = self.position, self.recipe
        loss_sum, acc_sum, seen = distributed.all_sum([pos.loss_sum, pos.acc_sum, pos.seen],
                                                      self.dist)
        row = {"epoch": pos.epoch + 1, "step": pos.step, "lr": self.procedure.lr(),
               "train_loss": loss_sum / max(seen, 1)}
        if self.procedure.reports_accuracy:
            row["train_accuracy"] = acc_sum / max(seen, 1)
        extra = distributed.all_sum(list(pos.extra_sums.values()), self.dist)
        row.update({f"train_{k}": v / max(seen, 1) for k, v in zip(pos.extra_sums, extra)})
        eval_cfg = recipe.get("eval", {})
        every = eval_cfg.get("every_epochs", 1)
        if every and ((pos.epoch + 1) % every == 0 or pos.epoch + 1 == self.epochs):
            split = eval_cfg.get("split", "val")
            row.update({f"{split}_{k}": v for k, v in self.evaluate(split).items()})
        pos.epoch, pos.loss_sum, pos.acc_sum, pos.seen = pos.epoch + 1, 0.0, 0.0, 0
        pos.extra_sums = {}
        self.early_stop(row)
        if self.dist.is_main:
            self.write_row(row)
            self.print_row(row)
            self.tracker.epoch(row)
            if self.position.stopped:
                print(f"early stop: {self.position.stopped}", flush=True)
        self.track_best(row)
        if recipe.get("checkpoint", {}).get("every_epochs", 1):
            self.save("last")

    def evaluate(self, split: str) -> dict[str, float]:
        dataset = self.eval_sets[split] if split != "train" else self.train_set
        metrics = self.recipe.get("eval", {}).get("metrics", ["accuracy"])
        data = self.recipe["data"]
        size = data.get("eval_batch_size", data.get("batch_size", 64))
        sums: dict[str, float] = {}
        count = 0
        with eval_mode(self.procedure.unwrapped, self.procedure.eval_model()):
            for batch in eval_batches(dataset, size, data.get("workers", 0)):
                values = self.procedure.eval_step(_to(batch, self.device, self.channels_last), metrics)
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + float(v.sum())
                count += _batch_size(batch)
        return self.procedure.aggregate(sums, count)

    def early_stop(self, row: dict) -> None:
        """`early_stop: {metric, patience, mode, min_delta}`: stop once the metric has not
        improved by more than min_delta for `patience` evaluations; the row says why."""
        cfg, pos = self.recipe.get("early_stop"), self.position
        if not cfg or cfg["metric"] not in row:
            return  # no evaluation this epoch
        value, delta = float(row[cfg["metric"]]), cfg.get("min_delta", 0.0)
        sign = 1.0 if cfg.get("mode", "min") == "min" else -1.0
        if pos.stop_best is None or sign * (pos.stop_best - value) > delta:
            pos.stop_best, pos.stale = value, 0
            return
        pos.stale += 1
        if pos.stale >= cfg.get("patience", 3):
            pos.stopped = (f"{cfg['metric']} has not improved for {pos.stale} evaluations "
                           f"(best {pos.stop_best:.6g})")
            row["stopped"] = pos.stopped

    def track_best(self, row: dict) -> None:
        if not self.procedure.tracks_best:
            return  # no validation figure says which epoch is best (a GAN's losses do not)
        split = self.recipe.get("eval", {}).get("split", "val")
        metric = getattr(self.procedure, "best_metric", None)  # e.g. super_resolve: psnr_y
        if metric:
            score = row.get(f"{split}_{metric}", -math.inf)  # higher is better
        else:
            score = row.get(f"{split}_accuracy", -row.get(f"{split}_loss", math.inf))
        if score > self.position.best:
            self.position.best = score
            self.save("best")

    def finish(self) -> dict:
        distributed.barrier(self.dist)
        result = {"run": str(self.folder), "epochs": self.position.epoch, "steps": self.position.step}
        if self.dist.is_main:
            from engine.train.plot import plot_metrics
            plot_metrics(self.folder / "metrics.csv", self.folder / "metrics.png")
            self.tracker.close()
            write_status(self.folder, "finished", cpu_start=self.cpu_start)
        return result

    # ---- files ------------------------------------------------------------------------------
    def write_header(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        plain = json.loads(json.dumps(self.recipe.doc))
        write_text_atomic(self.folder / "recipe.yaml", yaml.safe_dump(plain, sort_keys=False))
        write_text_atomic(self.folder / "spec.yaml", self.spec_text())
        write_text_atomic(self.folder / "spec.sha256", self.meta()["spec_sha256"] + "\n")
        if self.weights_report:  # which file a `weights:` glob picked, and what it loaded
            write_text_atomic(self.folder / "weights.txt", self.weights_report + "\n")

    def write_row(self, row: dict) -> None:
        path = self.folder / "metrics.csv"
        rows = _read_rows(path)[: self.position.rows]
        rows.append({k: _fmt(v) for k, v in row.items()})
        fields = list(dict.fromkeys(f for r in rows for f in r))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, text.getvalue())  # a kill mid-write never loses earlier rows
        self.position.rows = len(rows)

    def print_row(self, row: dict) -> None:
        parts = [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()]
        print("  ".join(parts), flush=True)

    def save(self, name: str) -> None:
        position = asdict(self.position)  # with the running sums of all processes
        position["loss_sum"], position["acc_sum"], position["seen"] = distributed.all_sum(
            [self.position.loss_sum, self.position.acc_sum, self.position.seen], self.dist)
        if not self.dist.is_main:
            return
        state = {"procedure": self.procedure.state_dict(), "position": position,
                 "recipe": self.recipe.name, "meta": self.meta()}
        save_checkpoint(state, self.folder / "checkpoints" / f"{name}.pt")

    def spec_text(self) -> str:
        """The resolved spec as the run folder's spec.yaml holds it."""
        return yaml.safe_dump(resolved_dict(self.shaped), sort_keys=False)

    def meta(self) -> dict[str, str]:
        """What a checkpoint records of the run that saved it, and a loading run must match."""
        if not hasattr(self, "_meta"):
            chosen = self.recipe.get("optimizers") or {"": self.recipe.get("optimizer") or {}}
            self._meta = {"recipe": self.recipe.name, "procedure": str(self.recipe["procedure"]),
                          "spec_sha256": hashlib.sha256(self.spec_text().encode()).hexdigest(),
                          "optimizer": " ".join(f"{k}:{v.get('name')}".lstrip(":")
                                                for k, v in chosen.items())}
        return self._meta

    def resume(self) -> None:
        """Continue from the folder's last checkpoint (what a killed run's atomic writes left
        half-made is removed first)."""
        sweep_temporaries(self.folder)
        self.restore(self.folder / "checkpoints" / "last.pt", same_recipe=True)
        if not self.dist.is_main:  # the saved sums are totals: count them once
            self.position.loss_sum = self.position.acc_sum = 0.0
            self.position.seen = 0

    def restore(self, path: Path, same_recipe: bool = False, state: dict | None = None) -> None:
        """Load a checkpoint (one loader for resume, eval, infer and sample): verified
        (checkpoint.load_checkpoint), matched against this run (`fits`: the same procedure and
        resolved spec; the same recipe and optimizers too where the run continues), then
        loaded; a state that still does not fit is a located error, never a crash. Evaluating
        or sampling with another recipe of the same network is allowed (DDIM sampling a DDPM
        run's checkpoint)."""
        state = load_checkpoint(path) if state is None else state  # read and hashed once
        resuming_only = ("recipe", "optimizer")  # evaluating needs only the network and procedure
        fits(state, path, self.recipe.name, {k: v for k, v in self.meta().items()
                                             if same_recipe or k not in resuming_only})
        try:
            self.procedure.load_state_dict(state["procedure"])
            position = Position(**state["position"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise located_error(
                f"checkpoint {path} does not fit recipe {self.recipe.name} as loaded: {first}",
                path, "", "give the same recipe and the same --set overrides the run was "
                "trained with (they are in its folder: recipe.yaml)") from None
        self.position = position

    # ---- judges: how procedures and sample metrics reach them (engine/train/judges.py) ------
    def digit_judge(self, dataset: str, root: str | None = None) -> DigitJudge:
        return digit_judge(dataset, root, str(self.device))

    def checkpoint_judge(self, path: Path, fallback_recipe: str) -> nn.Module:
        return judges.checkpoint_judge(path, fallback_recipe, str(self.device))


def train_recipe(recipe: Recipe, folder: Path) -> None:
    """Train `recipe` into `folder`: how a judge that is not cached yet gets its weights."""
    Run(recipe, folder).train()


def digit_judge(dataset: str, root: str | None = None, device: str = "cpu") -> DigitJudge:
    """The cached digit classifier of `dataset`, trained by a run the first time."""
    return judges.digit_judge(dataset, root, device, train_recipe)


def new_run_folder(recipe: Recipe, output: str | None) -> Path:
    """runs/<name>-<date>-<time>; every DDP process gets the main process's choice."""
    world = distributed.current()
    folder = [_new_folder(recipe, output)] if world.is_main else [None]
    if world.world > 1:
        torch.distributed.broadcast_object_list(folder)
    return Path(folder[0])


def _new_folder(recipe: Recipe, output: str | None) -> Path:
    base = Path(output or recipe["output"])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = base / f"{recipe.name}-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = base / f"{recipe.name}-{stamp}-{n}"
    return folder


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _batch_size(batch) -> int:
    """Samples in a batch: an (inputs, targets, ...) tuple, or one tensor (a language model's ids)."""
    return len(batch[0]) if isinstance(batch, (list, tuple)) else len(batch)


def _to(batch, device: torch.device, channels_last: bool = False):
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4 and batch.is_floating_point():  # image batches
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device, channels_last) for b in batch)
    return batch


@contextmanager
def eval_mode(*modules: nn.Module):
    """The modules in eval mode (batch norm on its running statistics, no dropout) for the
    block, then back in the modes they had."""
    modes = [(m, m.training) for m in modules]
    for m, _ in modes:
        m.eval()
    try:
        yield
    finally:
        for m, training in reversed(modes):
            m.train(training)


def open_checkpoint(recipe_name: str, overrides: list[str], checkpoint: str,
                    device: str | None = None) -> Run:
    """A run restored from a checkpoint, for `engine eval`, `infer` and `sample`."""
    from engine.train.recipe import load_recipe
    recipe = load_recipe(recipe_name, overrides)
    state = load_checkpoint(checkpoint)  # a missing or damaged file is reported before the set-up
    run = Run(recipe, Path(checkpoint).resolve().parent.parent, device, weights=False)
    run.restore(Path(checkpoint), state=state)
    return run
