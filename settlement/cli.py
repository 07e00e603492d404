"""The ``settlement`` command: one subcommand per job, each a thin shell around a handler.

Owns: argument parsing, exit codes and human-readable errors (file, line, field). Must never hold
business rules; every subcommand calls into the service or domain and prints the outcome.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1  # the job ran and found a problem (an unbalanced ledger, a malformed case)
EXIT_USAGE = 2


def _split(args: argparse.Namespace) -> int:
    from settlement.cases import CaseError, run_case

    path = Path(args.file)
    try:
        cases = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        print(f"settlement split: {path}: cannot read: {error}", file=sys.stderr)
        return EXIT_USAGE
    except json.JSONDecodeError as error:
        where = f"{path}:{error.lineno}:{error.colno}"
        print(f"settlement split: {where}: not JSON: {error.msg}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(cases, list):
        print(f"settlement split: {path}: expected a JSON list of cases", file=sys.stderr)
        return EXIT_USAGE
    results: list[dict[str, object]] = []
    failed = 0
    for index, case in enumerate(cases):
        try:
            results.append(run_case(case, index))
        except CaseError as error:
            failed += 1
            print(f"settlement split: {path}: {error}", file=sys.stderr)
    json.dump(results, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    if failed:
        print(f"settlement split: {failed} of {len(cases)} cases malformed (listed above)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="settlement", description="Clinic-side settlement engine (诊间结算)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    split = commands.add_parser(
        "split", help="what-if calculator: split every case of a neutral-format JSON file"
    )
    split.add_argument("file", help="a JSON list of cases (see ../shared/cases/README.md)")
    split.set_defaults(run=_split)

    for register in _registrars():
        register(commands)
    return parser


def _registrars() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Every module of ``settlement.commands`` adds its own subcommands through ``register``."""
    import importlib
    import pkgutil

    import settlement.commands

    found = []
    for module_info in sorted(pkgutil.iter_modules(settlement.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"settlement.commands.{module_info.name}")
        found.append(module.register)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
