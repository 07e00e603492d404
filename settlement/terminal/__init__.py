"""The desk terminal (``settlement terminal``): card in, PIN, quote, confirm, card signs, settle, receipt.

Owns the program a doctor's desk runs and its crash safety: every settle request is written to a local
journal before it is sent, and an unfinished one is resumed with the same ``request_id`` or reversed by
it, never sent under a new id. Modules: ``journal`` (the file and its state machine), ``flow`` (the
visit and the recovery), ``calls`` (identity, channel, requests, what an error means), ``charges`` (the
charges file and the person number), ``prompts`` (screen and keyboard), ``receipt`` (what is shown),
``limits`` (every timeout and bound). Imports pyscard only through ``cardio.open_pcsc_reader``.
"""

from settlement.terminal.flow import Desk, DeskSettings, Outcome
from settlement.terminal.journal import Journal, JournalEntry, State

__all__ = ["Desk", "DeskSettings", "Journal", "JournalEntry", "Outcome", "State"]
