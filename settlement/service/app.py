"""The application service the gRPC server, the HIS adapters and the CLI call: one method per command.

Owns: routing writes through the group-commit writer and reads through the reader engine, checking that
a caller reads only its own hospital's records, and paging. Must never hold business rules: those are in
the handlers (settle, reversal) and the domain.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cardio.card_crypto import IssuerKeySource
from settlement import limits
from settlement.errors import InvalidField, OtherHospital, PersonNotFound, SettlementNotFound
from settlement.identity import mask, shown
from settlement.service import reversal
from settlement.service import settle as settling
from settlement.service.clock import Clock, SystemClock, business_date
from settlement.service.commands import Caller, CancelCommand, QuoteCommand, RefundCommand, SettleCommand
from settlement.service.context import ServiceContext
from settlement.service.policy_book import PolicyBook
from settlement.service.replies import CancelResult, RefundResult, load_view
from settlement.service.settle import check_card
from settlement.service.views import AccountView, QuoteView, SettlementView, settlement_view
from settlement.service.writer import CommitObserver, Write, Writer
from settlement.storage.engine import Engines, make_engines
from settlement.storage.migrate import require_current
from settlement.storage.repository import Repository


@dataclass(frozen=True, slots=True)
class Page:
    settlements: tuple[SettlementView, ...]
    next_page_token: str


class SettlementApp:
    def __init__(self, engines: Engines, context: ServiceContext, *, on_commit: CommitObserver | None = None) -> None:
        require_current(engines.writer)
        self.engines = engines
        self.context = context
        self.writer = Writer(engines, on_commit=on_commit)
        self.writer.start()

    @classmethod
    def open(
        cls,
        database_url: str,
        policies: Path,
        *,
        key_sources: Mapping[str, IssuerKeySource] | None = None,
        clock: Clock | None = None,
        on_commit: CommitObserver | None = None,
    ) -> SettlementApp:
        context = ServiceContext(PolicyBook.load(policies), dict(key_sources or {}), clock or SystemClock())
        return cls(make_engines(database_url), context, on_commit=on_commit)

    def close(self) -> None:
        """Commit what is queued, then release the database."""
        self.writer.stop()
        self.engines.dispose()

    # --- writes --------------------------------------------------------------------------------

    def quote(self, command: QuoteCommand, *, deadline: float | None = None) -> QuoteView:
        return self.writer.write(self.quote_write(command), deadline=deadline)

    def settle(self, command: SettleCommand, *, deadline: float | None = None) -> SettlementView:
        return self.writer.write(self.settle_write(command), deadline=deadline)

    def cancel(self, command: CancelCommand, *, deadline: float | None = None) -> CancelResult:
        return self.writer.write(self.cancel_write(command), deadline=deadline)

    def refund(self, command: RefundCommand, *, deadline: float | None = None) -> RefundResult:
        return self.writer.write(self.refund_write(command), deadline=deadline)

    # What each command writes, for a caller that batches writes itself (the gRPC server's group commit).

    def quote_write(self, command: QuoteCommand) -> Write[QuoteView]:
        return Write(
            lambda repo: settling.quote(repo, self.context, command),
            settling.write_keys(command.caller, command.charge),
        )

    def settle_write(self, command: SettleCommand) -> Write[SettlementView]:
        return Write(
            lambda repo: settling.settle(repo, self.context, command),
            settling.write_keys(command.caller, command.charge, command.request_id, command.card_proof),
        )

    def cancel_write(self, command: CancelCommand) -> Write[CancelResult]:
        return Write(
            lambda repo: reversal.cancel(repo, self.context, command),
            reversal.write_keys(command.caller, command.request_id, command.settlement_id),
        )

    def refund_write(self, command: RefundCommand) -> Write[RefundResult]:
        return Write(
            lambda repo: reversal.refund(repo, self.context, command),
            reversal.write_keys(command.caller, command.request_id, command.settlement_id),
        )

    # --- reads ---------------------------------------------------------------------------------

    def get_settlement(self, caller: Caller, *, settlement_id: str = "", request_id: str = "") -> SettlementView:
        with self.engines.reader.connect() as connection:
            repo = Repository(connection)
            if request_id:
                found = repo.request(caller.hospital_id, request_id)
                if found is None or found["settlement_id"] is None:
                    raise SettlementNotFound(
                        f"no settlement was written under request_id {request_id}",
                        metadata={"request_id": request_id},
                    )
                settlement_id = str(found["settlement_id"])
            view = load_view(repo, settlement_id)
        if view.hospital_id != caller.hospital_id:
            raise OtherHospital(
                f"settlement {settlement_id} belongs to another hospital", metadata={"settlement_id": settlement_id}
            )
        return view

    def list_settlements(
        self,
        caller: Caller,
        *,
        first_day: dt.date,
        last_day: dt.date,
        person_number: str = "",
        page_size: int = 0,
        page_token: str = "",
        with_lines: bool = False,
    ) -> Page:
        """A hospital's entries for a period, oldest first; with a person, that person's statement."""
        if page_size < 0:
            raise InvalidField("page_size must not be negative", field="page_size")
        if last_day < first_day:
            raise InvalidField("end_date is before start_date", field="end_date")
        if (last_day - first_day).days >= limits.MAX_STATEMENT_DAYS:
            raise InvalidField(f"at most {limits.MAX_STATEMENT_DAYS} days per list", field="end_date")
        size = min(page_size or limits.DEFAULT_PAGE_SIZE, limits.MAX_PAGE_SIZE)
        filters = [caller.hospital_id, person_number, first_day.isoformat(), last_day.isoformat()]
        after_id = _read_page_token(page_token, filters)
        with self.engines.reader.connect() as connection:
            repo = Repository(connection)
            rows = repo.list_settlements(
                hospital_id=caller.hospital_id,
                person_number=person_number or None,
                first_day=first_day,
                last_day=last_day,
                after_id=after_id,
                limit=size + 1,
            )
            listed = [str(row["settlement_id"]) for row in rows[:size]]
            if with_lines:
                repo.prefetch_entries(listed)
            else:
                repo.prefetch_reversals(listed)
            views = tuple(
                settlement_view(
                    row,
                    repo.settlement_lines(str(row["settlement_id"])) if with_lines else (),
                    hospital_name=str(row["hospital_name"]),
                    reversed_by_id=repo.cancellation_of(str(row["settlement_id"])),
                )
                for row in rows[:size]
            )
        token = _page_token(views[-1].settlement_id, filters) if len(rows) > size else ""
        return Page(views, token)

    def get_account(self, caller: Caller, person_number: str, *, card_number: str = "") -> AccountView:
        with self.engines.reader.connect() as connection:
            repo = Repository(connection)
            person = repo.person(person_number)
            if person is None:
                raise PersonNotFound(
                    f"no insured person {shown(person_number)}", metadata={"person_number": shown(person_number)}
                )
            card = repo.card(card_number) if card_number else None
            if card_number and (card is None or card["person_number"] != person_number):
                check_card(repo, card_number, person_number)  # raises the precise refusal
            year = business_date(self.context.clock.now_us()).year
            state = repo.account_state(person_number, year)
        if state is None:
            raise PersonNotFound(
                f"person {shown(person_number)} has no account", metadata={"person_number": shown(person_number)}
            )
        return AccountView(
            person_number=person_number,
            name=str(person["name"]),
            insured_type=str(person["insured_type"]),
            region=str(person["region"]),
            card_number_masked=mask(card_number) if card is not None else "",
            card_status=str(card["status"]) if card is not None else "",
            current_year_fen=state.current_year_fen,
            historical_fen=state.historical_fen,
            accumulator_year=year,
            deductible_used_fen=state.ytd_deductible_fen,
            fund_paid_fen=state.ytd_fund_fen,
            self_segment_used_fen=state.ytd_self_segment_fen,
        )


def _page_token(after_id: str, filters: list[str]) -> str:
    payload = json.dumps({"after": after_id, "filters": _filters_digest(filters)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _read_page_token(token: str, filters: list[str]) -> str:
    if not token:
        return ""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after, digest = str(payload["after"]), str(payload["filters"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidField("page_token is not a token this service issued", field="page_token") from None
    if digest != _filters_digest(filters):
        raise InvalidField("page_token was issued for other filters; start again without it", field="page_token")
    return after


def _filters_digest(filters: list[str]) -> str:
    return hashlib.sha256("\x1f".join(filters).encode()).hexdigest()[:16]
