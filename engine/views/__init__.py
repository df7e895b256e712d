"""Views of a compiled spec: what a person reads, looks at, compares or ships.

- `summary`: the table of nodes, shapes, parameters and MACs (`engine build`, `engine summary`)
- `render`: the diagram in the papers' style (`engine render`)
- `diff/`: two specs compared, and which weights of one load into the other (`engine diff`)
- `codegen/`: a standalone PyTorch file of the model (`engine codegen`)
- `export`: ONNX and torch.export through PyTorch's own exporters (`engine export`)

Layering: views import `engine.compiler` (and `blocks`), never `engine.train`.
"""
