"""`engine codegen`: a spec written out as one standalone, readable PyTorch source file.

The file imports only torch, torchvision and the standard library:

- a primitive block becomes the torch layer it is, with its real arguments
  (`nn.Conv2d(64, 128, kernel_size=3, padding=1, bias=False)`); a block that adds a forward
  of its own becomes a short subclass copied from blocks/ (`LayerNorm2d`), and anything else
  the block's class itself, copied without its `@register`;
- merges and tensor reshaping are written inline in the forward (`add = bn3 + input`,
  `torch.cat([...], 1)`, `x.permute(0, 2, 1)`), attention as `nn.MultiheadAttention`;
- a `seq:`, `repeat` or inline `graph:` that is a plain chain becomes an `nn.Sequential`;
- every other graph (a spec block instance, even a chain; a network) becomes a class whose
  forward is the engine's generated forward. Instances with the same structure share one class,
  whose constructor takes the literals that differ between them, named after the block's params
  where they match (`Bottleneck(in_channels, width, stride=1)`, `width * 4`);
- the spec's `init:` rules are written out in each `__init__`; ties and frozen nodes too.

Module and parameter names are the engine's, so an engine-built model's state_dict loads into
the generated one with strict=True and gives the same outputs. Every torch-layer rendering is
checked against the block's own module (same attributes, parameters and buffers) before use;
a block that fails the check is copied as source instead.

The steps, one file each (ir.py holds the records passed between them): tree.py finds the graphs
that become classes; bodies.py writes each one's class body with its literals as holes, using
layers.py (primitive blocks as torch layers), inits.py (init, spectral norm, freeze statements)
and sources.py (block classes copied from blocks/); classes.py groups equal bodies into classes
and makes their parameters; write.py writes a class as text (literals.py: values and names as
Python); assemble.py puts the file together.
"""

from engine.views.codegen.assemble import codegen_source, write_codegen

__all__ = ["codegen_source", "write_codegen"]
