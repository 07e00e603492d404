"""Every limit the engine enforces, in one place, each with its unit in its name.

A limit is a promise to the caller (documented, refused with a precise reason when exceeded) and a bound
on the work one request can cause. Change them here only.
"""

from __future__ import annotations

# A charge (one visit's settlement).
MAX_LINES_PER_CHARGE = 500
MAX_LINE_AMOUNT_FEN = 100_000_000_00  # 100 million yuan: beyond any single outpatient line
MAX_ITEM_CODE_CHARS = 64

# Decimal scales fixed by the national interface spec (N5,4 ratios; N16,6 prices; N16,4 quantities).
RATIO_DECIMAL_PLACES = 4
UNIT_PRICE_DECIMAL_PLACES = 6
QUANTITY_DECIMAL_PLACES = 4
MAX_UNIT_PRICE_YUAN = 10_000_000_000  # N16,6 leaves 10 integer digits
MAX_QUANTITY = 999_999_999_999  # N16,4 leaves 12 integer digits

# Requests.
REQUEST_ID_MAX_CHARS = 64
REQUEST_RETENTION_DAYS = 400  # idempotency records outlive a year-end rollover and its corrections
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
MAX_STATEMENT_DAYS = 366

# Storage and concurrency.
MAX_SETTLES_PER_COMMIT = 64  # group commit: one fsync for up to this many settles
GROUP_COMMIT_WINDOW_MS = 2.0  # the server collects concurrent calls' writes this long before one commit
WRITE_TURN_POLL_MS = 0.5  # the server tries for the write turn this often while another process writes
MAX_COMMIT_QUEUE_DEPTH = 4096  # settles waiting for a commit before callers are told to back off
# A write whose caller has less time left than this is refused at once (DEADLINE_EXCEEDED with its
# ErrorInfo) instead of starting a commit the caller would stop waiting for.
MIN_COMMIT_BUDGET_MS = 20
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_POOL_CONNECTIONS = 8  # per engine; beyond it, checkouts overflow up to the same number again
MAX_IMPORT_ROWS = 1_000_000

# Quotes and card proofs.
QUOTE_VALIDITY_SECONDS = 600
UNPREDICTABLE_NUMBER_BYTES = 8

# Hospital-side identifiers carried through to receipts and reconciliation.
MAX_HOSPITAL_LINE_ID_CHARS = 64

# ---- Server: the gRPC listener and the process around it -------------------------------------------
# Defaults of the [limits] keys of the server config (settlement/server/config.py), which may override them.
MAX_RECEIVE_MESSAGE_BYTES = 1024 * 1024  # the largest legal request (500 lines) is ~100 KB; 5 MB is refused
MAX_SEND_MESSAGE_BYTES = 16 * 1024 * 1024  # a FULL ListSettlements page; larger needs a smaller page_size
MAX_CONCURRENT_RPCS = 256  # calls admitted at once, running or waiting for a worker; beyond: RESOURCE_EXHAUSTED
SERVER_PROCESSES = 1  # server processes sharing the port (SO_REUSEPORT), each with its own GIL and writer
SERVER_WORKER_THREADS = 16  # per process: blocking reads (PostgreSQL) handed off the event loop
KEEPALIVE_TIME_MS = 60_000  # the server pings an idle connection this often to find dead terminals
KEEPALIVE_TIMEOUT_MS = 20_000  # and drops the connection when the ping is not answered within this
MIN_CLIENT_PING_INTERVAL_MS = 10_000  # clients pinging more often than this earn a strike
MAX_PING_STRIKES = 2  # strikes before the server sends GOAWAY (ENHANCE_YOUR_CALM)
DRAIN_NOTICE_SECONDS = 2.0  # after SIGTERM: health says NOT_SERVING while calls are still accepted
DRAIN_GRACE_SECONDS = 30.0  # then: in-flight calls get this long to finish before they are cancelled
HEALTH_POLL_INTERVAL_MS = 1_000  # how often readiness (database reachable and migrated) is re-checked
