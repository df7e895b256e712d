"""The `engine` command line: validate, build, resolve, blocks, schema, list.

Spec errors print as compiler diagnostics and exit 1; a bad command line exits 2; nothing
prints a Python traceback unless ENGINE_DEBUG=1 is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

from engine.ir import SpecError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except SpecError as err:
        from engine.report import format_all
        print(format_all(err.diagnostics, color=sys.stderr.isatty()), file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head`: stop quietly
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug in the engine, not in the spec: say so plainly
        if os.environ.get("ENGINE_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(err).__name__}: {err}\n"
              "(this is a bug in the engine; rerun with ENGINE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(metavar="COMMAND")

    def command(name: str, func, help_text: str, spec: str | None = "one"):
        c = sub.add_parser(name, help=help_text, description=help_text)
        if spec == "one":
            c.add_argument("spec", help="a spec file, or the name of a bundled spec (resnet50)")
        elif spec == "many":
            c.add_argument("specs", nargs="+", help="spec files or bundled names")
        if spec:
            c.add_argument("--set", dest="overrides", action="append", default=[],
                           metavar="KEY=VALUE", help="override a param (or a dotted path)")
        c.set_defaults(func=func)
        return c

    command("validate", cmd_validate, "check specs (schema, references, types, shapes)", "many")
    b = command("build", cmd_build, "build a spec and print its nodes, shapes and parameters")
    b.add_argument("--depth", type=int, default=2, help="nesting depth of the table (default 2)")
    r = command("resolve", cmd_resolve, "print the fully resolved spec")
    r.add_argument("--json", action="store_true", help="JSON instead of YAML")
    command("blocks", cmd_blocks, "list every primitive block with its arguments and docs", None)
    command("schema", cmd_schema, "print the JSON Schema of specs (for editors)", None)
    command("list", cmd_list, "list the bundled specs", None)
    return p


def cmd_validate(args) -> int:
    from engine.pipeline import analyze
    failed: list = []
    for spec in args.specs:
        try:
            analyze(spec, args.overrides)
            print(f"ok  {spec}")
        except SpecError as err:
            failed += err.diagnostics
            print(f"bad {spec}", file=sys.stderr)
    if failed:
        raise SpecError(failed)
    return 0


def cmd_build(args) -> int:
    from engine.build import build
    from engine.pipeline import analyze
    from engine.table import format_table
    start = time.perf_counter()
    shaped = analyze(args.spec, args.overrides)
    model = build(shaped)
    seconds = time.perf_counter() - start
    total = sum(p.numel() for p in model.parameters())
    print(format_table(shaped, args.depth, total))
    print(f"built {shaped.spec.name} in {seconds:.2f} s")
    return 0


def cmd_resolve(args) -> int:
    import yaml

    from engine.dump import resolved_dict
    from engine.pipeline import analyze
    data = resolved_dict(analyze(args.spec, args.overrides))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100), end="")
    return 0


def cmd_blocks(args) -> int:
    from blocks.registry import IN_SIZE, all_blocks, type_name
    for name, info in all_blocks().items():
        params = ", ".join(
            f"{a.name}: {type_name(a.annotation)}" + ("" if a.required else f" = {a.default!r}")
            for a in info.args.values() if a.name != IN_SIZE)
        print(f"{name}({params})")
        for line in info.doc.splitlines():
            print(f"    {line}" if line else "")
        print()
    return 0


def cmd_schema(args) -> int:
    from engine.schema import spec_schema
    print(json.dumps(spec_schema(), indent=2))
    return 0


def cmd_list(args) -> int:
    from engine.merge import SPECS_DIR
    for path in sorted(SPECS_DIR.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        note = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
        print(f"{path.stem:<20} {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
