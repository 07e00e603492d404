"""Subcommands of ``settlement``, one module per job family.

Each module defines ``register(commands)``, which adds its subparsers and sets ``run`` on each to a
function ``(argparse.Namespace) -> int`` returning an exit code from ``settlement.cli``. Modules import
their handlers lazily so ``settlement --help`` stays fast. The CLI finds modules here by itself.
"""
