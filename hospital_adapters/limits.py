"""Every limit the hospital adapters enforce, in one place, each with its unit in its name.

The engine's own limits (lines per charge, decimal scales) live in ``settlement.limits`` and are reused,
not repeated. These bound what one HIS connection, request or file can cost us.
"""

from __future__ import annotations

# HL7 v2 over MLLP.
MAX_HL7_MESSAGE_BYTES = 1_048_576  # a DFT^P03 with 500 FT1 lines is ~150 KiB; 1 MiB leaves room
MAX_MLLP_CONNECTIONS = 64  # concurrent HIS connections; more are closed at once
MLLP_READ_TIMEOUT_SECONDS = 30.0  # an idle or stalled sender is disconnected after this
MLLP_READ_CHUNK_BYTES = 65_536
MLLP_DRAIN_SECONDS = 1.0  # after refusing an oversized frame, how long we read and discard before closing
MAX_HL7_FIELD_CHARS = 256  # any single value we read from a segment (codes, ids, numbers)

# FHIR over HTTP.
MAX_FHIR_BODY_BYTES = 1_048_576
MAX_HTTP_CONNECTIONS = 64
HTTP_READ_TIMEOUT_SECONDS = 30.0

# Charge files.
MAX_CHARGE_FILE_BYTES = 1_048_576
MAX_FILES_PER_POLL = 100  # a backlog is drained over several polls, oldest first
DEFAULT_POLL_INTERVAL_MS = 1_000
MIN_POLL_INTERVAL_MS = 100

# Configuration.
MAX_CODE_TABLE_ROWS = 200_000  # a large hospital's price list is ~30,000 items
MAX_CODE_TABLE_BYTES = 32 * 1_048_576
MAX_CONFIG_BYTES = 65_536
