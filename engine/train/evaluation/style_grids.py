"""`engine sample` for style-based generators (StyleGAN, Karras et al., 2019): beside the usual
grid, a style-mixing grid (the paper's figure 3) and a truncation grid (its figure 8).

Both work on the generator's per-layer styles, the [B, L, S] output of its `truncation` block:
a forward hook reads the styles each z gives, and another hands the synthesis layers a tensor
made here (rows' coarse styles with columns' fine ones), so the figures need nothing of the spec
beyond that block.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from engine.blocks.style import Truncation, layers_before
from engine.train.evaluation.sampling import generate, generator_for, save_grid

PSIS = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)  # truncation levels, left to right
COARSE = 2  # the style inputs of the first (constant's) resolution: the paper's "coarse" styles


def styles_block(model: nn.Module) -> Truncation | None:
    """The generator's per-layer styles block, or None for a generator without one."""
    return next((m for m in model.modules() if isinstance(m, Truncation)), None)


@contextmanager
def _hooked(block: Truncation, hook):
    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _with_styles(procedure, model: nn.Module, block: Truncation, z: Tensor) -> tuple[Tensor, Tensor]:
    """Images of z and the styles [B, L, S] the generator gave them."""
    seen: list[Tensor] = []
    with _hooked(block, lambda _m, _i, out: seen.append(out)):
        images = procedure.to_unit(procedure.generate(model, z, None))
    return images, seen[0]


def _from_styles(procedure, model: nn.Module, block: Truncation, styles: Tensor,
                 z: Tensor) -> Tensor:
    """Images drawn with these styles in place of what z would give."""
    with _hooked(block, lambda _m, _i, _out: styles):
        return procedure.to_unit(procedure.generate(model, z, None))


def mixing_grid(procedure, model: nn.Module, block: Truncation, k: int,
                generator: torch.Generator) -> Tensor:
    """(k + 1) x (k + 1) images: the top row k column sources, the left column k row sources,
    and cell (r, c) the coarse styles of row r with the other styles of column c."""
    rows, columns = procedure.latent(k, generator), procedure.latent(k, generator)
    row_images, row_styles = _with_styles(procedure, model, block, rows)
    column_images, column_styles = _with_styles(procedure, model, block, columns)
    mixed = torch.where(layers_before(row_styles, COARSE), row_styles.repeat_interleave(k, 0),
                        column_styles.repeat(k, 1, 1))
    cells = _from_styles(procedure, model, block, mixed, rows.repeat_interleave(k, 0))
    blank = torch.full_like(row_images[:1], 0.5)  # the corner: grey, as the grid lines
    grid = [blank, column_images]
    for r in range(k):
        grid += [row_images[r:r + 1], cells[r * k:(r + 1) * k]]
    return torch.cat(grid).cpu()


def truncation_grid(procedure, model: nn.Module, block: Truncation, k: int,
                    generator: torch.Generator) -> Tensor:
    """k rows (one z each) x len(PSIS) columns: psi from 1 (no truncation) to 0 (the average w)."""
    z = procedure.latent(k, generator)
    psi = block.psi
    columns = []
    try:
        for level in PSIS:
            block.psi = level
            columns.append(procedure.to_unit(procedure.generate(model, z, None)).cpu())
    finally:
        block.psi = psi
    return torch.stack(columns, 1).flatten(0, 1)  # row-major: z, then psi


def style_figures(procedure, run, n: int, output: str, seed: int) -> str | None:
    """The usual grid at `output`, with <stem>_mixing.png and <stem>_truncation.png beside it;
    None for a generator without per-layer styles (or a class-conditional one)."""
    model = procedure.eval_model()
    block = styles_block(model)
    if block is None or procedure.conditional:
        return None
    torch.manual_seed(seed)  # the noise inputs draw from the global generator
    generator = generator_for(run, seed)
    samples = save_grid(generate(procedure, n, generator), output, math.ceil(math.sqrt(n)))
    k = max(2, math.isqrt(n) - 1)
    stem = Path(output)
    mixing = save_grid(mixing_grid(procedure, model, block, k, generator),
                       stem.with_name(f"{stem.stem}_mixing{stem.suffix}"), k + 1)
    truncation = save_grid(truncation_grid(procedure, model, block, k, generator),
                           stem.with_name(f"{stem.stem}_truncation{stem.suffix}"), len(PSIS))
    cutoff = "every layer" if block.cutoff is None else f"the first {block.cutoff} layers"
    return (f"wrote {samples}: {n} samples; {mixing}: style mixing, the top row and left column "
            f"sources, each cell the coarse styles (layers 0-{COARSE - 1} of {block.layers}) of "
            f"its row with the other styles of its column; {truncation}: truncation, one z per "
            f"row, psi {', '.join(f'{p:g}' for p in PSIS)} left to right on {cutoff}")
