"""`cyclegan`: unpaired image-to-image translation (Zhu et al., ICCV 2017) between domains A and B.

Networks `gen_ab` (G: A -> B), `gen_ba` (F: B -> A), `disc_a` (D_A judges A images), `disc_b`
(D_B judges B images). Batches are `(images [B, 2C, S, S] in [0, 1], labels [B, 2])` of the
`unpaired` dataset: channels :C are an A image, C: an unrelated B image; both are mapped to
[-1, 1] (the generators end in tanh).

Per batch (paper, section 4 and 7.1):
- G step: LSGAN losses (Mao et al., 2017) (D_B(G(a)) - 1)^2 + (D_A(F(b)) - 1)^2, plus
  `cycle` (lambda = 10) * (|F(G(a)) - a| + |G(F(b)) - b|), plus `identity` * lambda *
  (|G(b) - b| + |F(a) - a|) (identity 0.5, as the paper's section 5.2 and released code).
- D step: for each domain, ((D(real) - 1)^2 + D(fake)^2) / 2, the fake drawn from a history of
  the last `pool` (50) generated images of that domain (Shrivastava et al., 2017): a new image
  enters the pool, and with probability 1/2 an older one is shown to D in its place.
Optimizers `generator` (G and F together) and `discriminator` (D_A and D_B together): the
recipe's `optimizers:` entry of that name, else its `optimizer:` (the paper: Adam, lr 2e-4,
betas (0.5, 0.999)).

`engine eval` with `eval: {sample_metrics: [class_kept]}` translates the held-out split both
ways and classifies each translation with the target domain's digit judge
(engine/train/judges.py): class_kept_ab is how often G(a) is read as a's digit by B's judge,
class_kept_ba likewise; the judge's accuracy on real target images is the ceiling, on
untranslated (resized) source images the floor.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from engine.train.procedures.generative import Generative
from engine.train.procedures.pix2pix import optimizer_config, to_signed, to_unit
from engine.train.registry import PROCEDURES

ROWS = 10  # images per row of the sample figure


class ImagePool:
    """A history of generated images (Shrivastava et al., 2017): D sees a mix of new and old fakes."""

    def __init__(self, size: int):
        self.size, self.images = size, []

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:  # fill first: the new image is shown and kept
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) < 0.5:  # show an old image, keep the new one instead
                k = int(torch.randint(0, self.size, ()))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


def readings(judge, side: int, images: Tensor) -> Tensor:
    """The digit `judge` reads in each of images [N, C, S, S] in [0, 1], resized to its side."""
    from engine.train.data.unpaired import resize
    return judge.judge(torch.stack([resize(x, side) for x in images])).predicted


def kept(read: Tensor, labels: Tensor | int) -> float:
    """The share of readings equal to their labels (or to one digit)."""
    return float((read == labels).float().mean())


def by_digit(read: Tensor, labels: Tensor) -> str:
    """The share kept of each digit: '0: 96%, 1: 71%, ...'."""
    return ", ".join(f"{d}: {kept(read[labels == d], d):.0%}" for d in labels.unique().tolist())


def lost_classes(read: Tensor, labels: Tensor, count: int = 2) -> str:
    """The `count` digits that lose their class most often (by images lost), each with the share
    kept and the digit read most often instead: '7: 35% kept (45% read as 9); ...'."""
    parts = []
    for digit in labels.unique().tolist():
        got = read[labels == digit]
        wrong = got[got != digit]
        if len(wrong):
            instead = int(wrong.mode().values)
            parts.append((len(wrong), f"{digit}: {kept(got, digit):.0%} kept "
                                       f"({kept(got, instead):.0%} read as {instead})"))
    parts.sort(key=lambda part: -part[0])
    return "; ".join(text for _, text in parts[:count]) or "none"


def lsgan(logits: Tensor, real: bool) -> Tensor:
    """Least-squares GAN loss: mean (D(x) - target)^2 over the patch map."""
    return (logits.float() - (1.0 if real else 0.0)).pow(2).mean()


@PROCEDURES.register("cyclegan")
class CycleGAN(Generative):
    OPTIONS = {"cycle": 10.0, "identity": 0.5, "pool": 50}
    ema_after = "generator"
    can_sample = False

    def setup(self, total_steps: int) -> None:
        gens = torch.nn.ModuleList([self.network("gen_ab"), self.network("gen_ba")])
        discs = torch.nn.ModuleList([self.network("disc_a"), self.network("disc_b")])
        self.add_optimizer("generator", optimizer_config(self.recipe, "generator"), gens,
                           total_steps)
        self.add_optimizer("discriminator", optimizer_config(self.recipe, "discriminator"),
                           discs, total_steps)
        self.discriminators = discs
        self.pools = {"a": ImagePool(self.options["pool"]), "b": ImagePool(self.options["pool"])}

    def split(self, images: Tensor) -> tuple[Tensor, Tensor]:
        c = images.shape[1] // 2
        return to_signed(images[:, :c]), to_signed(images[:, c:])

    def net(self, name: str, x: Tensor, model=None) -> Tensor:
        with self.autocast():
            return self.network(name, self.model if model is None else model)(x).float()

    def generator_loss(self, a: Tensor, b: Tensor) -> tuple[Tensor, dict, Tensor, Tensor]:
        fake_b, fake_a = self.net("gen_ab", a), self.net("gen_ba", b)
        adv = lsgan(self.net("disc_b", fake_b), True) + lsgan(self.net("disc_a", fake_a), True)
        cycle = (self.net("gen_ba", fake_b) - a).abs().mean() \
            + (self.net("gen_ab", fake_a) - b).abs().mean()
        loss = adv + self.options["cycle"] * cycle
        terms = {"g_adv": adv.item(), "cycle": cycle.item()}
        if self.options["identity"]:  # G should leave a B image as it is, F an A image
            identity = (self.net("gen_ab", b) - b).abs().mean() \
                + (self.net("gen_ba", a) - a).abs().mean()
            loss = loss + self.options["identity"] * self.options["cycle"] * identity
            terms["identity"] = identity.item()
        return loss, terms, fake_a, fake_b

    def discriminator_loss(self, a: Tensor, b: Tensor, fake_a: Tensor, fake_b: Tensor) -> Tensor:
        old_a, old_b = self.pools["a"].query(fake_a), self.pools["b"].query(fake_b)
        loss_a = 0.5 * (lsgan(self.net("disc_a", a), True) + lsgan(self.net("disc_a", old_a), False))
        loss_b = 0.5 * (lsgan(self.net("disc_b", b), True) + lsgan(self.net("disc_b", old_b), False))
        return loss_a + loss_b

    def train_step(self, batch) -> dict[str, float]:
        a, b = self.split(batch[0])
        self.discriminators.requires_grad_(False)  # G's step leaves D's gradients alone
        loss, terms, fake_a, fake_b = self.generator_loss(a, b)
        self.discriminators.requires_grad_(True)
        self.optimize(loss, "generator")
        d_loss = self.discriminator_loss(a, b, fake_a.detach(), fake_b.detach())
        self.optimize(d_loss, "discriminator")
        return {"loss": loss.item(), "d_loss": d_loss.item(), **terms}

    @torch.no_grad()
    def eval_step(self, batch, metrics: list) -> dict[str, Tensor]:
        a, b = self.split(batch[0])
        model = self.eval_model()
        cycle_a = (self.net("gen_ba", self.net("gen_ab", a, model), model) - a).abs()
        cycle_b = (self.net("gen_ab", self.net("gen_ba", b, model), model) - b).abs()
        # per sample, in [0, 1] pixel units (the images span 2 in [-1, 1])
        ab, ba = cycle_a.flatten(1).mean(1) / 2, cycle_b.flatten(1).mean(1) / 2
        return {"loss": (ab + ba) / 2, "cycle_aba": ab, "cycle_bab": ba}

    @torch.no_grad()
    def translate(self, images: Tensor, name: str, batch: int = 250) -> Tensor:
        """Images [N, C, S, S] in [0, 1] through generator `name`, back in [0, 1], on the CPU."""
        model = self.eval_model()
        return torch.cat([to_unit(self.net(name, to_signed(x.to(self.device)), model)).cpu()
                          for x in images.split(batch)])

    # ---- checkpoints: the image pools are part of the state -------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(),
                "pools": {k: [x.cpu() for x in p.images] for k, p in self.pools.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for k, images in (state.get("pools") or {}).items():
            self.pools[k].images = [x.to(self.device) for x in images]

    # ---- figures ----------------------------------------------------------------------------
    def domains(self, run, split: str):
        from engine.train.data import data_root
        from engine.train.registry import DATASETS
        data = run.recipe["data"]
        return DATASETS.get("unpaired").domains(data_root(data.get("root")), split,
                                                run.recipe["seed"], None,
                                                dict(data.get("args") or {}))

    @staticmethod
    def stack(domain, n: int | None = None) -> tuple[Tensor, Tensor]:
        count = len(domain) if n is None else min(n, len(domain))
        items = [domain[i] for i in range(count)]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])

    def sample_figure(self, run, n: int, output: str, seed: int) -> str:
        """Rows A, A->B, A->B->A, B, B->A, B->A->B of held-out test images."""
        from engine.train.evaluation.sampling import save_grid
        domain_a, domain_b = self.domains(run, "test")
        per_row = min(n, ROWS)
        a, _ = self.stack(domain_a, per_row)
        b, _ = self.stack(domain_b, per_row)
        ab, ba = self.translate(a, "gen_ab"), self.translate(b, "gen_ba")
        rows = [a, ab, self.translate(ab, "gen_ba"), b, ba, self.translate(ba, "gen_ab")]
        path = save_grid(torch.cat(rows), Path(output), len(a))
        return (f"wrote {path}: rows A, A->B, A->B->A, B, B->A, B->A->B of {len(a)} held-out "
                "test images per domain")

    def evaluate_samples(self, run, split: str, names: list[str], seed: int):
        if "class_kept" not in names:
            return {}, []
        from engine.train.data import dataset_info
        data = run.recipe["data"]
        args, root = dict(data.get("args") or {}), data.get("root")
        domain_a, domain_b = self.domains(run, split)
        a, label_a = self.stack(domain_a)
        b, label_b = self.stack(domain_b)
        out: dict[str, float | str] = {}
        for key, source, labels, target, real, real_labels, gen in (
                ("ab", a, label_a, args["b"], b, label_b, "gen_ab"),
                ("ba", b, label_b, args["a"], a, label_a, "gen_ba")):
            judge = run.digit_judge(target, root)
            side = dataset_info(target, root).size  # the judge's own image size
            read = readings(judge, side, self.translate(source, gen))
            floor = readings(judge, side, source)
            out[f"class_kept_{key}"] = kept(read, labels)
            out[f"class_kept_{key}_lost"] = lost_classes(read, labels)
            out[f"class_kept_{key}_ceiling"] = kept(readings(judge, side, real), real_labels)
            out[f"class_kept_{key}_floor"] = kept(floor, labels)
            out[f"class_kept_{key}_by_digit"] = by_digit(read, labels)
            out[f"class_kept_{key}_floor_by_digit"] = by_digit(floor, labels)
            out[f"judge_{key}"] = judge.identity
        notes = [f"class_kept_ab: {args['b']}'s judge reads G(a) as a's digit ({len(a)} {args['a']} "
                 f"{split} images); class_kept_ba: {args['a']}'s judge on F(b) ({len(b)} images); "
                 "_ceiling: the judge on real target-domain images; _floor: on the untranslated "
                 "source images, resized; _lost: the two digits whose translations lose the class "
                 "most often, and what they are read as instead; _by_digit: the share kept of each "
                 "digit, translated and untranslated (_floor_by_digit)"]
        return out, notes
