"""The process the crash test kills with SIGKILL: settles in a loop and prints each acknowledged request id.

Usage: python crash_child.py DATABASE_URL. Settles once to warm up, prints "ready", then one request id
per acknowledged settle (after its commit returned; the warm-up's first), flushing each line, until it is
killed.
"""

from __future__ import annotations

import sys
import threading

from service_world import BLOCKED, EMPLOYEE, HANGZHOU_EMPLOYEE, RESIDENT, charge, open_app, settle_command

from settlement.storage.engine import make_engines

WORKERS = 8


def main() -> None:
    app = open_app(make_engines(sys.argv[1]))
    lock = threading.Lock()
    people = [EMPLOYEE, RESIDENT, HANGZHOU_EMPLOYEE]

    def work(n: int) -> None:
        person = people[n % len(people)]
        while True:
            command = settle_command(request=charge(person))
            app.settle(command)
            with lock:
                sys.stdout.write(command.request_id + "\n")
                sys.stdout.flush()

    # One settle before "ready": the first connection and the first statements take about half a second
    # on a slow machine (PostgreSQL), longer than the parent's shortest wait before its SIGKILL.
    warm_up = settle_command(request=charge(EMPLOYEE))
    app.settle(warm_up)
    sys.stdout.write(f"ready\n{warm_up.request_id}\n")
    sys.stdout.flush()
    for n in range(WORKERS):
        threading.Thread(target=work, args=(n,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    del BLOCKED  # its card is blocked: it would only be refused
    main()
