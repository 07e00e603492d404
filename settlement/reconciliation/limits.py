"""Limits of the reconciliation side, each with its unit in its name.

Owns: the bounds on what one reconciliation run will read and write. These belong beside
``settlement.limits`` and live here only until the lead moves them there; change them in one place.
"""

from __future__ import annotations

# Input files. A busy hospital settles tens of thousands of visits a day; a file beyond these is not
# a day's export but a mistake, and reading it would only exhaust memory.
MAX_IMPORT_FILE_BYTES = 256 * 1024 * 1024
MAX_IMPORT_ROWS = 1_000_000  # same figure as settlement.limits.MAX_IMPORT_ROWS
MAX_IMPORT_FIELD_CHARS = 256  # memo is the longest free-text column
MAX_ID_CHARS = 64  # settlement, request, visit, message ids (request ids are capped at 64 too)
MAX_SETTLEMENT_AMOUNT_FEN = 100_000_000_00  # 100 million yuan: beyond any outpatient settlement

# How many problems of a refused file are listed in one refusal: enough to fix a file in one pass,
# few enough that the message stays readable.
MAX_REPORTED_PROBLEMS = 20

# Reports.
MAX_HTML_DISCREPANCY_ROWS = 1_000  # the page stays light; the CSV and the workbook list everything
MAX_MONTH_DAYS = 31
