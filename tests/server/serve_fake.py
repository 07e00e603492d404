"""The real server process around the fake servicer, configured from the environment only; for the
SIGTERM test. Prints PORT <n> once listening, DRAINED from on_drain and EXITING before it returns."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from server_fakes import FakeSettlementService

from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc
from settlement.server.config import load_config
from settlement.server.runtime import configure_logging, run_server


def main() -> int:
    configure_logging()
    config = load_config(None, os.environ)
    fake = FakeSettlementService(dev_mode=config.dev_mode)
    run_server(
        config,
        lambda server: settlement_service_pb2_grpc.add_SettlementServiceServicer_to_server(fake, server),
        ready=lambda: True,
        on_drain=lambda: print("DRAINED", flush=True),
        on_started=lambda running: print(f"PORT {running.port}", flush=True),
    )
    print("EXITING", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
