"""The process the crash test kills with SIGKILL: settles in a loop and prints each acknowledged request id.

Usage: python crash_child.py DATABASE_URL. Prints "ready", then one request id per acknowledged settle
(after its commit returned), flushing each line, until it is killed.
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

    for n in range(WORKERS):
        threading.Thread(target=work, args=(n,), daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    del BLOCKED  # its card is blocked: it would only be refused
    main()
