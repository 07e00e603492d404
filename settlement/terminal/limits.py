"""Every limit and timeout of the desk terminal, in one place, each with its unit in its name.

A timeout here is a promise to the doctor: the terminal never waits longer than this for one thing. The
card layer's own bounds (one APDU exchange, removal confirmation) live in ``cardio.limits``.
"""

from __future__ import annotations

# Waiting for the patient's card, and how often the progress line is refreshed meanwhile.
CARD_WAIT_TIMEOUT_MS = 60_000
CARD_WAIT_PROGRESS_INTERVAL_MS = 1_000

# Visits: how often the whole card flow (wait, PIN, read, quote, sign) starts over after the card was
# pulled before it signed. Nothing is settled in such an attempt, so starting over is always safe.
MAX_VISIT_ATTEMPTS = 3
# PIN prompts per card read; the card itself blocks the PIN after its own tries (cardio.limits.PIN_TRIES),
# this bounds the prompts for PINs refused before they reach the card (not 4-12 digits).
MAX_PIN_PROMPTS = 5

# gRPC deadlines. Settle and cancel wait for the engine's group commit, hence longer than a quote.
QUOTE_TIMEOUT_MS = 10_000
SETTLE_TIMEOUT_MS = 15_000
CANCEL_TIMEOUT_MS = 15_000
# Automatic re-sends of the identical request (same request_id) when the outcome is unknown
# (UNAVAILABLE, DEADLINE_EXCEEDED, ...), before the operator is asked what to do.
MAX_AUTOMATIC_ATTEMPTS = 3
RETRY_BACKOFF_MS = 1_000
# Rounds of "resend / reverse / later" the operator is offered for one unfinished settle.
MAX_RESOLVE_ROUNDS = 10
# Quotes write nothing but a challenge, so a failed one is simply asked again, this often.
MAX_QUOTE_ATTEMPTS = 3

# Input files.
MAX_CHARGES_FILE_BYTES = 1_000_000  # 500 lines of JSON are ~100 KB
MAX_PERSON_MAP_FILE_BYTES = 10_000_000

# The journal. A settle request of 500 lines serialises to ~100 KB, ~135 KB in base64.
MAX_JOURNAL_LINE_BYTES = 512 * 1024
# When no entry is unfinished and the journal has grown past this, it is moved aside on start.
JOURNAL_ROTATE_BYTES = 16 * 1024 * 1024
