"""Every limit and timeout of the card layer, in one place, each with its unit in its name.

A timeout here is a promise to the caller: no call into ``cardio`` blocks longer than the documented
bound (plus a little scheduling slack). Change them here only; docs/card.md quotes them.
"""

from __future__ import annotations

# Waiting for a patient to present a card at the desk.
CARD_WAIT_TIMEOUT_MS = 30_000
# One logical exchange with the card (a command plus its T=0 follow-ups). A healthy card answers in
# tens of milliseconds; a card that takes longer than this is treated as hung.
APDU_EXCHANGE_TIMEOUT_MS = 5_000
# How long SCardGetStatusChange blocks per loop turn: bounds how quickly a monitor or a wait notices
# stop() and how long a pcscd restart goes unnoticed.
STATUS_POLL_INTERVAL_MS = 200
# After a failed transmit, how long to watch the reader for the removal to show up (pcscd polls readers
# about every 400 ms, so a pulled card is reported up to that much later than the transmit fails).
REMOVAL_CONFIRM_TIMEOUT_MS = 1_000
# The monitor's pause before re-establishing a PC/SC context after pcscd went away.
MONITOR_RECONNECT_BACKOFF_MS = 500
# How long stop() waits for the monitor thread to finish.
MONITOR_STOP_TIMEOUT_MS = 2_000

# T=0 follow-ups (61xx GET RESPONSE, 6Cxx re-send) per logical command: a card that keeps asking is broken.
MAX_T0_FOLLOW_UPS = 8
# Short APDUs only: at most 255 command data bytes and 256 response data bytes per physical APDU.
MAX_COMMAND_DATA_BYTES = 255
MAX_RESPONSE_DATA_BYTES = 256
# Data assembled from several GET RESPONSE answers.
MAX_ASSEMBLED_RESPONSE_BYTES = 4_096

# The citizen card.
PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 12
PIN_TRIES = 3
CARD_NUMBER_MAX_CHARS = 20
TERMINAL_ID_MAX_BYTES = 16
UNPREDICTABLE_NUMBER_BYTES = 8  # must equal settlement.limits.UNPREDICTABLE_NUMBER_BYTES
CHALLENGE_BYTES = 8
CRYPTOGRAM_BYTES = 8
AMOUNT_FIELD_BYTES = 6
MAX_AMOUNT_FEN = 2 ** (8 * AMOUNT_FIELD_BYTES) - 1
COUNTER_BYTES = 2
MAX_TRANSACTION_COUNTER = 2 ** (8 * COUNTER_BYTES) - 1

# The virtual card and the vpcd link.
VPCD_DEFAULT_HOST = "127.0.0.1"
VPCD_DEFAULT_PORT = 35963  # reader "... 00 00"; the second reader "... 00 01" listens on 35964
VPCD_MAX_MESSAGE_BYTES = 65_535  # the 2-byte length prefix
VPCD_CONNECT_TIMEOUT_MS = 5_000
