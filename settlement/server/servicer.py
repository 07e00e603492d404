"""The SettlementService RPCs: identify the caller, parse the request, call the service, build the reply.

Owns: the order of those steps for each method, the mapping of a call's deadline onto the service's, and
where each step runs: on the server's event loop, writes through its group commit; reads on the loop on
SQLite (indexed reads of a local file, well under a millisecond) and in the loop's thread pool on
PostgreSQL (network round trips). Must never catch a refusal: handlers raise ``SettlementError``s and the
status interceptor turns each into its canonical status with one ``ErrorInfo``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import Callable
from typing import TypeVar

from settlement import limits
from settlement.api.gen.clinic.settlement.v1 import (
    settlement_service_pb2 as pb,
)
from settlement.api.gen.clinic.settlement.v1 import (
    settlement_service_pb2_grpc as pb_grpc,
)
from settlement.errors import InvalidField
from settlement.server import messages
from settlement.server.group_commit import GroupCommit
from settlement.server.identity import ServicerContext, check_hospital, identify
from settlement.service import commands
from settlement.service.app import SettlementApp
from settlement.service.commands import (
    Caller,
    CancelCommand,
    ChargeRequest,
    QuoteCommand,
    RefundCommand,
    SettleCommand,
)
from settlement.service.daily_ledger import DailyLedgerView, read_daily_ledger

NO_DEADLINE_SECONDS = 86_400.0
Result = TypeVar("Result")


class SettlementServicer(pb_grpc.SettlementServiceServicer):
    """Serve from one event loop (``settlement.server.runtime`` runs it); ``close`` after the server stopped."""

    def __init__(
        self, app: SettlementApp, *, dev_mode: bool, commit_window_ms: float = limits.GROUP_COMMIT_WINDOW_MS
    ) -> None:
        self.app = app
        self.dev_mode = dev_mode
        self.commits = GroupCommit(app.writer, app.engines, window_seconds=commit_window_ms / 1000)
        self._reads_inline = app.engines.is_sqlite

    def close(self) -> None:
        self.commits.close()

    def _caller(self, context: ServicerContext, hospital_id: str) -> Caller:
        caller = identify(context, dev_mode=self.dev_mode)
        check_hospital(caller, hospital_id)
        return caller

    async def _read(self, read: Callable[[], Result]) -> Result:
        if self._reads_inline:
            return read()
        return await asyncio.get_running_loop().run_in_executor(None, read)

    async def Quote(self, request: pb.QuoteRequest, context: ServicerContext) -> pb.QuoteResponse:
        caller = self._caller(context, request.hospital_id)
        quoted = await self.commits.run(
            self.app.quote_write(QuoteCommand(caller, _charge(request))), deadline=_deadline(context)
        )
        return pb.QuoteResponse(
            quote_id=quoted.quote_id,
            unpredictable_number=quoted.unpredictable_number,
            expire_time=messages.timestamp(quoted.expires_at_us),
            split=messages.split_message(quoted.split),
        )

    async def Settle(self, request: pb.SettleRequest, context: ServicerContext) -> pb.SettleResponse:
        caller = self._caller(context, request.hospital_id)
        command = SettleCommand(
            caller=caller,
            request_id=commands.request_id(request.request_id),
            charge=_charge(request),
            card_proof=messages.card_proof(request.card_proof) if request.HasField("card_proof") else None,
        )
        settled = await self.commits.run(self.app.settle_write(command), deadline=_deadline(context))
        return pb.SettleResponse(settlement=messages.settlement_message(settled))

    async def CancelSettlement(
        self, request: pb.CancelSettlementRequest, context: ServicerContext
    ) -> pb.CancelSettlementResponse:
        caller = self._caller(context, request.hospital_id)
        target = request.WhichOneof("target")
        if target is None:
            raise InvalidField("set settlement_id or original_request_id", field="target")
        command = CancelCommand(
            caller=caller,
            request_id=commands.request_id(request.request_id),
            settlement_id=commands.identifier(request.settlement_id, field="settlement_id")
            if target == "settlement_id"
            else "",
            original_request_id=commands.request_id(request.original_request_id, field="original_request_id")
            if target == "original_request_id"
            else "",
        )
        result = await self.commits.run(self.app.cancel_write(command), deadline=_deadline(context))
        return pb.CancelSettlementResponse(
            cancellation=messages.settlement_message(result.cancellation),
            cancelled=messages.settlement_message(result.cancelled),
        )

    async def RefundLines(self, request: pb.RefundLinesRequest, context: ServicerContext) -> pb.RefundLinesResponse:
        caller = self._caller(context, request.hospital_id)
        command = RefundCommand(
            caller=caller,
            request_id=commands.request_id(request.request_id),
            settlement_id=commands.identifier(request.settlement_id, field="settlement_id"),
            hospital_line_ids=tuple(request.hospital_line_ids),
        )
        result = await self.commits.run(self.app.refund_write(command), deadline=_deadline(context))
        reply = pb.RefundLinesResponse(
            cancellation=messages.settlement_message(result.cancellation),
            cancelled=messages.settlement_message(result.cancelled),
        )
        if result.replacement is not None:
            reply.replacement.CopyFrom(messages.settlement_message(result.replacement))
        return reply

    async def GetSettlement(
        self, request: pb.GetSettlementRequest, context: ServicerContext
    ) -> pb.GetSettlementResponse:
        caller = self._caller(context, request.hospital_id)
        key = request.WhichOneof("key")
        if key is None:
            raise InvalidField("set settlement_id or request_id", field="key")
        if key == "settlement_id":
            read = functools.partial(
                self.app.get_settlement,
                caller,
                settlement_id=commands.identifier(request.settlement_id, field="settlement_id"),
            )
        else:
            read = functools.partial(
                self.app.get_settlement, caller, request_id=commands.request_id(request.request_id)
            )
        view = await self._read(read)
        return pb.GetSettlementResponse(settlement=messages.settlement_message(view))

    async def ListSettlements(
        self, request: pb.ListSettlementsRequest, context: ServicerContext
    ) -> pb.ListSettlementsResponse:
        caller = self._caller(context, request.hospital_id)
        read = functools.partial(
            self.app.list_settlements,
            caller,
            first_day=messages.iso_date(request.start_date, field="start_date"),
            last_day=messages.iso_date(request.end_date, field="end_date"),
            person_number=commands.identifier(request.person_number, field="person_number")
            if request.person_number
            else "",
            page_size=request.page_size,
            page_token=request.page_token,
            with_lines=request.view == pb.SETTLEMENT_VIEW_FULL,
        )
        page = await self._read(read)
        return pb.ListSettlementsResponse(
            settlements=[messages.settlement_message(view) for view in page.settlements],
            next_page_token=page.next_page_token,
        )

    async def GetAccount(self, request: pb.GetAccountRequest, context: ServicerContext) -> pb.GetAccountResponse:
        caller = self._caller(context, request.hospital_id)
        read = functools.partial(
            self.app.get_account,
            caller,
            commands.identifier(request.person_number, field="person_number"),
            card_number=commands.identifier(request.card_number, field="card_number") if request.card_number else "",
        )
        account = await self._read(read)
        return pb.GetAccountResponse(account=messages.account_message(account))

    async def GetDailyLedger(
        self, request: pb.GetDailyLedgerRequest, context: ServicerContext
    ) -> pb.GetDailyLedgerResponse:
        caller = self._caller(context, request.hospital_id)
        day = messages.iso_date(request.date, field="date")
        view = await self._read(functools.partial(self._daily_ledger, caller.hospital_id, day))
        return pb.GetDailyLedgerResponse(ledger=messages.daily_ledger_message(view))

    def _daily_ledger(self, hospital_id: str, day: dt.date) -> DailyLedgerView:
        with self.app.engines.reader.connect() as connection:
            return read_daily_ledger(connection, hospital_id, day)


def _charge(request: pb.QuoteRequest | pb.SettleRequest) -> ChargeRequest:
    """The visit part that QuoteRequest and SettleRequest share, field for field."""
    return messages.charge_request(
        person_number=request.person_number,
        card_number=request.card_number,
        insured_type=request.insured_type,
        visit_type=request.visit_type,
        visit_date=request.visit_date,
        use_account=request.use_account,
        lines=request.lines,
    )


def _deadline(context: ServicerContext) -> float | None:
    """The call's deadline on the monotonic clock; None when the client set none."""
    remaining = context.time_remaining()
    if remaining is None or remaining > NO_DEADLINE_SECONDS:  # gRPC reports "none" as a huge number
        return None
    return time.monotonic() + remaining
