"""The `engine` command line: specs, their views, and training.

Spec errors print as compiler diagnostics and exit 1; a bad command line exits 2; nothing
prints a Python traceback unless ENGINE_DEBUG=1 is set.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # `engine infer R --checkpoint C "a sentence" "another"`: inputs after an option land in
    # `extra` (argparse fills a `*` positional only once); anything else there is an error
    if getattr(args, "func", None) is cmd_infer and not any(e.startswith("-") for e in extra):
        args.inputs = [*args.inputs, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not _load_plugins(args.plugins):
        return 2
    # imported here, not at the top: `engine --help` then stops before importing torch (seconds)
    from engine.compiler.ir import SpecError
    try:
        return args.func(args) or 0
    except SpecError as err:
        from engine.compiler.report import format_all
        print(format_all(err.diagnostics, color=sys.stderr.isatty()), file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head`: stop quietly
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug in the engine, not in the spec: say so plainly
        if isinstance(err, OSError) and err.filename:  # the file system said no: not a bug
            print(f"error: {err.filename}: {err.strerror or err}", file=sys.stderr)
            return 1
        if os.environ.get("ENGINE_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(err).__name__}: {err}\n"
              "(this is a bug in the engine; rerun with ENGINE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 3


def _load_plugins(modules: list[str]) -> bool:
    """Import `-p` modules and installed plugins before any command reads the block registry."""
    from engine.blocks.plugins import PluginError, load_entry_points, load_module
    try:
        for name in modules:
            load_module(name)
        load_entry_points()
    except (PluginError, ValueError) as err:  # ValueError: a bad or duplicate @register
        print(f"error: {err}", file=sys.stderr)
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("-p", "--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                   help="import a module of your own blocks first: a file (./my_blocks.py) or an "
                        "importable name (my_package.blocks); repeatable. Installed packages "
                        "register theirs through the 'engine.blocks' entry-point group")
    sub = p.add_subparsers(metavar="COMMAND")
    _spec_commands(sub)
    _view_commands(sub)
    _training_commands(sub)
    _command(sub, "blocks", cmd_blocks, "list every primitive block with its arguments and docs",
             None)
    _command(sub, "schema", cmd_schema, "print the JSON Schema of specs (for editors)", None) \
        .add_argument("--recipe", action="store_true", help="the schema of recipes instead")
    ls = _command(sub, "list", cmd_list, "list the bundled specs (or recipes) with their first "
                  "comment line", None)
    ls.add_argument("pattern", nargs="?", help="only names matching this shell wildcard ('*vit*'); "
                    "a plain word matches anywhere in the name")
    ls.add_argument("--recipes", action="store_true", help="the bundled recipes instead of specs")
    _add_examples(sub)
    return p


def _version() -> str:
    """The installed distribution's version (a source tree that was never installed has none)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("engine")
    except PackageNotFoundError:
        return "(version unknown: not installed; pip install . gives it one)"


EXAMPLES = {
    "validate": ["engine validate specs/*.yaml", "engine validate recipes/digits_cnn.yaml"],
    "build": ["engine build resnet50 --set num_classes=10", "engine build my_net.yaml --depth 1"],
    "resolve": ["engine resolve resnet18 --json", "engine resolve digits_cnn --set epochs=5"],
    "codegen": ["engine codegen resnet50 -o resnet50.py"],
    "export": ["engine export small_cnn --format onnx -o small_cnn.onnx"],
    "summary": ["engine summary vit_b16 --batch 32", "engine summary resnet50 --json"],
    "render": ["engine render vit_b16 -o vit_b16.svg", "engine render resnet50 -o resnet50.png --depth 3"],
    "diff": ["engine diff resnet50 resnet101", "engine diff resnet50_v1 resnet50 --render diff.png"],
    "view": ["engine view resnet50", "engine view my_net.yaml --watch",
             "engine view resnet50_v1 resnet50", "engine view --root my_specs/",
             "engine view vit_b16 --export site/"],
    "train": ["engine train digits_cnn", "engine train mnist_cnn --set epochs=2 --nproc 2",
              "engine train digits_cnn --resume runs/digits_cnn-<time>"],
    "eval": ["engine eval digits_cnn --checkpoint runs/digits_cnn-*/checkpoints/best.pt",
             "engine eval digits_cnn --checkpoint runs/digits_cnn-*/checkpoints/best.pt --json"],
    "runs": ["engine runs", "engine runs /data/runs",
             "engine runs compare runs/digits_cnn-<time1> runs/digits_cnn-<time2> -o compare.png"],
    "infer": ["engine infer digits_cnn --checkpoint runs/digits_cnn-*/checkpoints/best.pt seven.png"],
    "sample": [
        "engine sample ddpm_mnist --checkpoint runs/ddpm_mnist-*/checkpoints/last.pt -o grid.png",
        "engine sample ae_mnist --checkpoint runs/ae_mnist-*/checkpoints/best.pt -o ae.png --reconstruct"],
    "blocks": ["engine blocks | less"],
    "schema": ["engine schema > spec.schema.json", "engine schema --recipe > recipe.schema.json"],
    "list": ["engine list", "engine list '*vit*'", "engine list --recipes mnist"],
}


class _Help(argparse.HelpFormatter):
    """Wraps the description as usual and prints the examples (the epilog) line by line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def _add_examples(sub) -> None:
    """Every subcommand's --help ends with examples of it."""
    for name, command in sub.choices.items():
        if name in EXAMPLES:
            command.epilog = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[name])
            command.formatter_class = _Help


def _command(sub, name: str, func, help_text: str, spec: str | None = "one"):
    """A subcommand taking one spec (or several, or none) and `--set` overrides."""
    c = sub.add_parser(name, help=help_text, description=help_text)
    if spec == "one":
        c.add_argument("spec", help="a spec file, or the name of a bundled spec (resnet50)")
    elif spec == "many":
        c.add_argument("specs", nargs="+", help="spec files or bundled names")
    if spec:
        c.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override a param (or a dotted path); "
                       "+key=v adds, ++key=v sets or adds, ~key deletes")
    c.set_defaults(func=func)
    return c


def _spec_commands(sub) -> None:
    _command(sub, "validate", cmd_validate, "check specs (schema, references, types, shapes) or "
             "recipes (keys, names, options, and the spec they train)",
             "many")
    b = _command(sub, "build", cmd_build, "build a spec and print its nodes, shapes and parameters")
    b.add_argument("--depth", type=int, default=2, help="nesting depth of the table (default 2)")
    b.add_argument("--weights", metavar="SOURCE", help="start from pretrained weights and report "
                   "what loaded: torchvision (its default weights; torchvision:IMAGENET1K_V2 names "
                   "a set; cached by torch.hub), or a checkpoint file or glob "
                   "(runs/NAME-*/checkpoints/last.pt); entries whose shape differs start fresh")
    b.add_argument("--optimize", action="store_true", help="also make the inference build (batch "
                   "norms folded, activations fused, convs packed channels-last) and print what "
                   "was folded, fused and skipped")
    r = _command(sub, "resolve", cmd_resolve, "print the fully resolved spec, or a recipe (its "
                 "keys with their defaults) and the spec it trains, resolved with the recipe's settings")
    r.add_argument("--json", action="store_true", help="JSON instead of YAML")
    c = _command(sub, "codegen", cmd_codegen, "write a standalone PyTorch source file of the model")
    c.add_argument("-o", "--output", required=True, help="the .py file to write")
    e = _command(sub, "export", cmd_export, "export through PyTorch's exporters (ONNX, torch.export)")
    e.add_argument("--format", choices=["onnx", "torch-export"], required=True)
    e.add_argument("-o", "--output", required=True, help="the file to write")
    e.add_argument("--optimize", action="store_true", help="export the inference build: batch "
                   "norms folded into convs/linears (no oneDNN packing: exporters do not know it)")


def _view_commands(sub) -> None:
    s = _command(sub, "summary", cmd_summary, "per-node shapes, parameters and MACs, with totals "
                 "and an activation-memory estimate (no weights allocated)")
    s.add_argument("--depth", type=int, default=2, help="nesting depth of the table (default 2)")
    s.add_argument("--batch", type=int, default=1, help="batch size for activation memory")
    s.add_argument("--json", action="store_true", help="JSON instead of a table")
    r = _command(sub, "render", cmd_render, "draw the architecture as a diagram (Graphviz)")
    r.add_argument("-o", "--output", required=True, help="output file")
    r.add_argument("--format", choices=["svg", "png", "pdf", "dot"],
                   help="default: from the output file's extension")
    r.add_argument("--depth", type=int, default=2, help="levels of blocks drawn open (default 2)")
    r.add_argument("--expand", nargs="*", default=[], metavar="PATH",
                   help="also open these nodes (repeats stay collapsed otherwise)")
    d = _command(sub, "diff", cmd_diff, "structural diff of two specs, with a weight-transfer "
                 "report", None)
    d.add_argument("a", help="the old spec (path or bundled name)")
    d.add_argument("b", help="the new spec")
    d.add_argument("--set-a", dest="overrides_a", action="append", default=[], metavar="K=V")
    d.add_argument("--set-b", dest="overrides_b", action="append", default=[], metavar="K=V")
    d.add_argument("--json", action="store_true", help="JSON instead of text")
    d.add_argument("--render", metavar="FILE", help="also draw the diff on one diagram")
    _viewer_command(sub)


def _viewer_command(sub) -> None:
    v = _command(sub, "view", cmd_view, "the spec, its diagram and its diff in the browser: a "
                 "local web viewer (127.0.0.1), or with --export a static site", None)
    v.add_argument("spec", nargs="?", help="a spec file or bundled name (none: the index of specs)")
    v.add_argument("spec_b", nargs="?", help="a second spec: the diff view of SPEC -> SPEC_B")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V",
                   help="override a param of SPEC (as other commands' --set)")
    v.add_argument("--set-b", dest="overrides_b", action="append", default=[], metavar="K=V",
                   help="override a param of SPEC_B")
    v.add_argument("--port", type=int, default=0, help="the port (default: a free one)")
    v.add_argument("--root", action="append", default=[], metavar="DIR",
                   help="also list and serve the specs in this folder (repeatable)")
    v.add_argument("--watch", action="store_true", help="update the open page when a spec file "
                   "(or one it extends or includes) is saved")
    v.add_argument("--export", metavar="DIR", help="write the pages as a static site instead")
    v.add_argument("--no-browser", action="store_true", help="print the address, open no browser")


def _training_commands(sub) -> None:
    _train_command(sub)
    _runs_command(sub)
    _checkpoint_commands(sub)
    _sample_command(sub)


DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps (default: the recipe's `device:`, else auto)"


def _train_command(sub) -> None:
    t = sub.add_parser("train", help="train a recipe", description="train a recipe")
    t.add_argument("recipe", help="a recipe file, or the name of a bundled recipe")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key (dotted paths: data.batch_size=32); "
                   "+key=v adds, ++key=v sets or adds, ~key deletes")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    t.add_argument("--output", metavar="DIR", help="where run folders go (default: runs)")
    t.add_argument("--nproc", type=int, default=1, help="processes for DistributedDataParallel "
                   "(on each machine)")
    t.add_argument("--nnodes", default="1", metavar="N",
                   help="machines in the run (torchrun --nnodes; MIN:MAX with --rdzv-endpoint)")
    t.add_argument("--node-rank", type=int, metavar="K", help="this machine's number, 0 on the "
                   "--master machine (torchrun --node_rank)")
    t.add_argument("--master", metavar="ADDR:PORT", help="node 0's address and a free port "
                   "(torchrun --master_addr/--master_port)")
    t.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="instead of --master: an elastic "
                   "c10d rendezvous (torchrun --rdzv_backend c10d --rdzv_endpoint)")
    t.add_argument("--rdzv-id", metavar="ID", help="the rendezvous's job id, alike on every machine")
    t.add_argument("--device", help=DEVICE_HELP)
    t.set_defaults(func=cmd_train)


def _runs_command(sub) -> None:
    text = ("list the run folders under FOLDER (default: runs): recipe, spec hash, status, epochs, "
            "best metric, wall time; `engine runs compare A B`: both metrics tables, the recipe "
            "and spec differences, and both runs' curves on one plot")
    r = sub.add_parser("runs", help="list run folders, or compare two (runs compare A B)",
                       description=text)
    r.add_argument("what", nargs="*", metavar="FOLDER | compare A B")
    r.add_argument("-o", "--output", default="compare.png",
                   help="the PNG that `runs compare` writes (default: compare.png)")
    r.set_defaults(func=cmd_runs)


def _checkpoint_commands(sub) -> None:
    """`eval` and `infer`: a recipe and one of its run's checkpoints."""
    for name, func, text in (("eval", cmd_eval, "evaluate a checkpoint on held-out data"),
                             ("infer", cmd_infer, "run a checkpoint on input files")):
        c = sub.add_parser(name, help=text, description=text)
        c.add_argument("recipe", help="the recipe the checkpoint was trained with")
        c.add_argument("--checkpoint", required=True, help="a .pt file from a run folder")
        c.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
        c.add_argument("--device", help=DEVICE_HELP)
        c.set_defaults(func=func)
        if name == "eval":
            c.add_argument("--split", default="test", choices=["train", "val", "test"])
            c.add_argument("--seed", type=int, default=0, help="seed of the sample metrics")
            c.add_argument("--json", action="store_true", help="the figures as one JSON object on stdout")
            c.add_argument("--baseline", action="store_true", help="also score a logistic "
                           "regression on the raw pixels of the train split (classifiers)")
        else:
            c.add_argument("inputs", nargs="*", help="image files (classifiers, segmentation, "
                           "super-resolution) or sentences (translation)")
            c.add_argument("--file", help="a text file of sentences to translate, one per line")
            c.add_argument("--optimize", action="store_true", help="run the inference build "
                           "(as the recipe's `infer: {optimize: true}`)")
            c.add_argument("--beam", type=int, help="beam size for translation (default: the recipe's)")
            c.add_argument("-o", "--output", help="folder for written images (default: beside each "
                           "input); segmentation writes <stem>_mask.png and <stem>_overlay.png")
            c.add_argument("--top-k", type=int, default=3)


def _sample_command(sub) -> None:
    s = sub.add_parser("sample", help="write a grid of samples (or reconstructions) of a "
                       "generative checkpoint", description="write a grid of samples, or for "
                       "autoencoders of held-out reconstructions; for segmentation, held-out "
                       "test images with the prediction tinted over them and an error map "
                       "(--set procedure.figure=grid: the grid of images, predicted and true masks)")
    s.add_argument("recipe", help="the recipe the checkpoint was trained with")
    s.add_argument("--checkpoint", required=True, help="a .pt file from a run folder")
    s.add_argument("-n", type=int, default=64, help="how many images (default 64)")
    s.add_argument("-o", "--output", required=True, help="the PNG to write")
    s.add_argument("--label", type=int, help="class of every sample (conditional models)")
    s.add_argument("--reconstruct", action="store_true",
                   help="reconstruct held-out test images instead of sampling")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V",
                   help="override a recipe key (--set procedure.steps=50 --set procedure.eta=1.0)")
    s.add_argument("--device", help=DEVICE_HELP)
    s.set_defaults(func=cmd_sample)


def cmd_validate(args) -> int:
    from engine.compiler import analyze
    from engine.compiler.ir import SpecError
    failed: list = []
    for spec in args.specs:
        try:
            if _is_recipe(spec):  # a recipe: its keys, names, options and the spec it trains
                from engine.train.recipe import load_recipe
                load_recipe(spec, args.overrides)
            else:
                analyze(spec, args.overrides)
            print(f"ok  {spec}")
        except SpecError as err:
            failed += err.diagnostics
            print(f"bad {spec}", file=sys.stderr)
    if failed:
        raise SpecError(failed)
    return 0


RECIPE_KEYS = {"spec", "procedure", "data", "optimizer", "optimizers", "epochs"}


def _is_recipe(path: str) -> bool:
    """A file with a recipe's top-level keys (`spec:`, `procedure:`, `data:` ...; specs have none).

    The keys are read from the text (a key at the start of a line), not by parsing the YAML:
    the file is parsed once, by the loader that reports its errors with their locations."""
    file = Path(path)
    if not file.is_file():
        from engine.train.recipe import find_recipe
        file = find_recipe(path) if "/" not in path and not file.suffix else file
        if not file.is_file() or file.parent.name != "recipes":
            return False
    from engine.compiler.ir import SpecError
    from engine.compiler.load import read_file
    try:  # read_file: a regular UTF-8 file within the size limit
        text = read_file(file)
    except SpecError:
        return False  # the spec loader reports it with its location
    keys = set(re.findall(r"^([A-Za-z_]\w*)[ \t]*:", text, re.M))
    if not keys and text.lstrip().startswith("{"):  # a flow-style document: its first keys
        keys = set(re.findall(r"[{,]\s*([A-Za-z_]\w*)\s*:", text[:4096]))
    return bool(RECIPE_KEYS & keys)


def cmd_build(args) -> int:
    from engine.compiler import analyze
    from engine.compiler.build import build
    from engine.views.summary import format_summary, summarize
    start = time.perf_counter()
    shaped = analyze(args.spec, args.overrides)
    model = build(shaped)
    seconds = time.perf_counter() - start
    if args.weights:  # before the table, so a bad source is the only thing printed
        from engine.train.weights import load_weights
        report = load_weights(model, shaped, args.weights, where="").text()
    print(format_summary(summarize(shaped, args.depth)))
    total = sum(p.numel() for p in model.parameters())
    print(f"\nbuilt {shaped.spec.name}: {total:,} parameters in {seconds:.2f} s")
    if args.weights:
        print(report)
    if args.optimize:
        from engine.compiler.optimize import optimize
        print("\n" + optimize(model, shaped, inplace=True)[1].text())
    return 0


def cmd_summary(args) -> int:
    from engine.compiler import analyze
    from engine.views.summary import format_summary, summarize, summary_json
    summary = summarize(analyze(args.spec, args.overrides), args.depth, args.batch)
    print(json.dumps(summary_json(summary), indent=2) if args.json else format_summary(summary))
    return 0


def cmd_render(args) -> int:
    from engine.compiler import analyze
    from engine.views.render import render_to_file
    shaped = analyze(args.spec, args.overrides)
    notes: list[str] = []
    path = render_to_file(shaped, args.output, args.format, args.depth, args.expand, notes)
    for note in notes:  # blocks left collapsed: too many clusters for Graphviz
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {path}")
    return 0


def cmd_diff(args) -> int:
    from engine.compiler import analyze
    from engine.views.diff import diff_json, diff_specs, format_diff
    a, b = analyze(args.a, args.overrides_a), analyze(args.b, args.overrides_b)
    result = diff_specs(a, b)
    print(json.dumps(diff_json(result), indent=2) if args.json else format_diff(result))
    if args.render:
        from engine.views.render import render_diff_to_file
        notes: list[str] = []
        path = render_diff_to_file(result, a, b, args.render, notes=notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_view(args) -> int:
    from engine.views.viewer import view
    specs = [s for s in (args.spec, args.spec_b) if s]
    return view(specs, args.overrides, args.overrides_b, args.root, args.port, args.watch,
                args.export, not args.no_browser)


def cmd_codegen(args) -> int:
    from engine.compiler import analyze
    from engine.views.codegen import write_codegen
    path = write_codegen(analyze(args.spec, args.overrides), args.output)
    print(f"wrote {path}")
    return 0


def cmd_export(args) -> int:
    from engine.views.export import export_spec
    path = export_spec(args.spec, args.overrides, args.format, args.output,
                       optimize=args.optimize)
    print(f"wrote {path}")
    return 0


def cmd_resolve(args) -> int:
    import yaml

    from engine.compiler import analyze
    from engine.compiler.dump import resolved_dict
    if _is_recipe(args.spec):
        data = _resolved_recipe(args.spec, args.overrides)
    else:
        data = resolved_dict(analyze(args.spec, args.overrides))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100), end="")
    return 0


def _resolved_recipe(name: str, overrides: list[str]) -> dict:
    """`recipe:` the merged recipe (extends followed, --set applied, unset keys at their
    defaults) and `spec:` the spec it trains, resolved with the recipe's settings and the
    sizes its data gives (what a run folder's recipe.yaml and spec.yaml hold)."""
    from engine.compiler.dump import resolved_dict
    from engine.train.recipe import DEFAULTS, load_recipe
    recipe = load_recipe(name, overrides)
    doc = {k: v for k, v in json.loads(json.dumps(recipe.doc)).items() if k != "extends"}
    return {"recipe": {**doc, **{k: v for k, v in DEFAULTS.items() if k not in doc}},
            "spec": resolved_dict(recipe.shaped)}


def cmd_train(args) -> int:
    from engine.train import distributed
    nodes = distributed.Nodes(args.nnodes, args.node_rank, args.master, args.rdzv_endpoint,
                              args.rdzv_id)
    if (args.nproc != 1 or nodes.several) and "WORLD_SIZE" not in os.environ:
        argv = sys.argv[1:]  # each worker reruns the command without the launcher's options
        for name in ("--nproc", "--nnodes", "--node-rank", "--master", "--rdzv-endpoint", "--rdzv-id"):
            argv = _drop_option(argv, name)
        return distributed.launch(args.nproc, argv, nodes)
    from pathlib import Path

    from engine.train.recipe import load_recipe
    from engine.train.runner import Run, new_run_folder
    recipe = load_recipe(args.recipe, args.overrides)
    folder = Path(args.resume) if args.resume else new_run_folder(recipe, args.output)
    run = Run(recipe, folder, args.device, weights=not args.resume)  # a resumed run loads its own
    if args.resume:
        run.resume()
    result = run.train()
    if run.dist.is_main:
        print(f"run folder: {result['run']}")
    return 0


def cmd_eval(args) -> int:
    from contextlib import redirect_stdout

    from engine.train.evaluation.report import evaluate_checkpoint, plain, record
    from engine.train.runner import open_checkpoint
    # with --json, stdout is the one JSON object: anything else printed goes to stderr
    with redirect_stdout(sys.stderr if args.json else sys.stdout):
        run = open_checkpoint(args.recipe, args.overrides, args.checkpoint, args.device)
        metrics, samples, notes = evaluate_checkpoint(run, args.split, args.seed, args.baseline)
        size = len(run.eval_sets.get(args.split, run.train_set))
        if not args.json:
            print(f"{run.recipe.name} on {args.split} ({size} samples): "
                  + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            if samples:
                print(f"{run.recipe.name} samples against {args.split}: "
                      + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in samples.items()))
        for note in notes:
            print(note)
    # sample figures keep their own count under sample_count; `samples` is the split's size
    figures = {k if k != "samples" else "sample_count": v for k, v in samples.items()}
    result = {"recipe": run.recipe.name, "checkpoint": args.checkpoint, "split": args.split,
              "samples": size, **metrics, **figures}
    written = record(run, args.checkpoint, args.overrides, result)
    if args.json:
        print(json.dumps(plain(result)))
    elif written is not None:
        print(f"recorded in {written}")
    return 0


def cmd_runs(args) -> int:
    from engine.train.runs import compare, runs_table
    what = args.what or ["runs"]
    if what[0] == "compare":
        if len(what) != 3:
            print("engine runs compare: give two run folders (compare A B)", file=sys.stderr)
            return 2
        for folder in what[1:]:
            if not (Path(folder) / "recipe.yaml").is_file():
                print(f"engine runs compare: {folder} is not a run folder (no recipe.yaml)",
                      file=sys.stderr)
                return 1
        print(compare(Path(what[1]), Path(what[2]), Path(args.output)))
        return 0
    if len(what) > 1:
        print("engine runs: give one folder, or compare A B", file=sys.stderr)
        return 2
    print(runs_table(Path(what[0])))
    return 0


def cmd_sample(args) -> int:
    from engine.train.evaluation.sampling import sample_grid
    from engine.train.runner import open_checkpoint
    if args.n < 1:
        print("engine sample: -n must be at least 1", file=sys.stderr)
        return 2
    run = open_checkpoint(args.recipe, args.overrides, args.checkpoint, args.device)
    print(sample_grid(run, args.n, args.output, args.label, args.seed, args.reconstruct))
    return 0


def cmd_infer(args) -> int:
    from engine.train.evaluation.infer import classify_files
    from engine.train.runner import open_checkpoint
    if not args.inputs and not args.file:
        print("engine infer: give inputs (files or sentences) or --file", file=sys.stderr)
        return 2
    run = open_checkpoint(args.recipe, args.overrides, args.checkpoint, args.device)
    run.procedure.eval_model().eval()  # a restored model is in training mode: dropout, batch stats
    if args.optimize or (run.recipe.get("infer") or {}).get("optimize"):
        # packed oneDNN convs take float32: under the recipe's amp only the folds are done
        report = run.procedure.optimize_for_inference(run.shaped, pack=not run.recipe.get("amp"))
        print(report, file=sys.stderr)
    own = getattr(run.procedure, "infer", None)  # translation, segmentation, super-resolution
    if own is not None:
        for line in own(run, args):
            print(line)
        return 0
    for path, top in classify_files(run, args.inputs, args.top_k):
        print(f"{path}: " + ", ".join(f"{label} {p:.3f}" for label, p in top))
    return 0


def _drop_option(argv: list[str], name: str) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def cmd_blocks(args) -> int:
    from engine.blocks.registry import INFERRED, all_blocks, type_name
    for name, info in all_blocks().items():
        params = ", ".join(
            f"{a.name}: {type_name(a.annotation)}" + ("" if a.required else f" = {a.default!r}")
            for a in info.args.values() if a.name not in INFERRED)
        print(f"{name}({params})")
        for line in info.doc.splitlines():
            print(f"    {line}" if line else "")
        print()
    return 0


def cmd_schema(args) -> int:
    from engine.compiler.schema import recipe_schema, spec_schema
    if getattr(args, "recipe", False):
        from engine.train.recipe import DESCRIPTIONS, SCHEMA
        print(json.dumps(recipe_schema(SCHEMA, DESCRIPTIONS), indent=2))
    else:
        print(json.dumps(spec_schema(), indent=2))
    return 0


def cmd_list(args) -> int:
    from fnmatch import fnmatchcase

    from engine.compiler.merge import RECIPES_DIR, SPECS_DIR, header_summary
    pattern = args.pattern or "*"
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    paths = [p for p in sorted((RECIPES_DIR if args.recipes else SPECS_DIR).glob("*.yaml"))
             if fnmatchcase(p.stem, pattern)]
    if not paths:
        kind = "recipe" if args.recipes else "spec"
        print(f"engine list: no bundled {kind} matches '{args.pattern}'", file=sys.stderr)
        return 1
    width = max(20, *(len(p.stem) + 1 for p in paths))
    for path in paths:
        print(f"{path.stem:<{width}} {header_summary(path, 98 - width)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
