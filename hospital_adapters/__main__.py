"""Command line for offline demos: run one hospital's adapter against the in-memory fake engine.

    python -m hospital_adapters --config hospital.toml --fake-person P001=10000   # demo, fake engine
    python -m hospital_adapters --config clinic.toml --once --fake-person P001=10000

Owns: argument parsing and the run loop of the demo only. Against the real engine, run
``settlement adapter`` (``settlement/commands/adapter.py``: mTLS or dev mode, the gRPC engine port);
``main(argv, engine=...)`` still accepts any ``EnginePort`` for tests. Must never settle real money
through the fake.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from pathlib import Path

from hospital_adapters.config import load_config
from hospital_adapters.fake import FakeEngine
from hospital_adapters.files.adapter import FilesAdapter
from hospital_adapters.port import EnginePort
from hospital_adapters.registry import build_adapter


def _parse_person(text: str) -> tuple[str, int]:
    person, _, balance = text.partition("=")
    if not person or not balance.isdigit():
        raise argparse.ArgumentTypeError("expected PERSON_NUMBER=BALANCE_FEN")
    return person, int(balance)


def main(argv: list[str] | None = None, *, engine: EnginePort | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hospital_adapters", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the hospital's TOML file")
    parser.add_argument("--once", action="store_true", help="files adapter: process the folder once, exit")
    parser.add_argument("--fake-person", type=_parse_person, action="append", default=[],
                        metavar="PERSON=BALANCE_FEN", help="demo only: settle against an in-memory fake engine")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if engine is None:
        if not args.fake_person:
            parser.error("no engine: pass --fake-person for a demo; run `settlement adapter` for the real engine")
        engine = FakeEngine(dict(args.fake_person))
    adapter = build_adapter(load_config(args.config), engine)
    if args.once:
        if not isinstance(adapter, FilesAdapter):
            parser.error("--once is for the files adapter")
        for result in adapter.inbox.process_pending():
            print(result)  # noqa: T201 - the command's output is the list of result files
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with adapter:
        logging.getLogger(__name__).info("serving %s", adapter.address)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
