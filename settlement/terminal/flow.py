"""One desk visit, and the recovery of settles whose outcome the terminal never learned.

Owns the order of the steps (card, PIN, read, quote, confirm, sign, journal, settle, receipt) and the one
rule that keeps a patient from paying twice: a settle request is in the journal, fsync'd, before it is
sent, and an unfinished one is only ever resent with its own ``request_id`` or reversed by it (2601).
A new visit does not start while one is unfinished. Must never show, log or store the PIN, and never show
more of a card number or citizen ID than its last 4 characters.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc

# Submodules, not the ``cardio`` package namespace: under pytest, tests/cardio on sys.path can shadow the
# package's __init__ (a namespace package), while its submodules still resolve.
from cardio.card_crypto import GenerateAcRequest
from cardio.citizen_card import CitizenCard, CitizenCardData, read_citizen_card
from cardio.errors import CardError, CardRemoved, InvalidPinFormat, NoCard, NoReader, WrongPin
from cardio.reader import ApduExchange, CardReaderPort
from settlement.api.gen.clinic.settlement.v1 import charge_pb2, settlement_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.domain.money import format_yuan
from settlement.identity import mask
from settlement.service.clock import CHINA_STANDARD_TIME
from settlement.terminal import limits
from settlement.terminal.calls import (
    Answer,
    Identity,
    answer_of,
    quote_request,
    settle_request,
    signed_date,
    visit_fields,
)
from settlement.terminal.charges import ChargesError, VisitCharges, person_number_for
from settlement.terminal.journal import Journal, JournalEntry, State
from settlement.terminal.prompts import Console
from settlement.terminal.receipt import card_line, quote_lines, receipt

REASON_NOTHING_SETTLED = "SETTLEMENT_NOT_FOUND"  # a 2601 that finds nothing: the attempt never settled
REASON_ALREADY_CANCELLED = "ALREADY_CANCELLED"
UNFINISHED_POLICIES = ("ask", "retry", "reverse")


class Outcome(enum.Enum):
    SETTLED = "settled"
    REFUSED = "refused"  # the engine refused; nothing was settled
    REVERSED = "reversed"  # the attempt was reversed (or found never to have settled)
    UNKNOWN = "unknown"  # an attempt's outcome is still unknown; it stays in the journal
    DECLINED = "declined"  # the doctor or patient said no before the card signed
    CARD_FAILED = "card_failed"
    FAILED = "failed"  # a local problem (no person number, the engine unreachable for a quote)


class TerminalInvariantViolated(Exception):
    """The engine answered something that cannot be: stop, and let a person look (nothing is journaled)."""


@dataclass(frozen=True)
class DeskSettings:
    identity: Identity
    reader: str | None = None  # a reader name, or its index in the reader list; None: any reader
    card_wait_timeout_ms: int = limits.CARD_WAIT_TIMEOUT_MS
    unfinished: str = "ask"  # what to do with an unfinished settle: ask, retry or reverse
    quote_timeout_ms: int = limits.QUOTE_TIMEOUT_MS
    settle_timeout_ms: int = limits.SETTLE_TIMEOUT_MS
    cancel_timeout_ms: int = limits.CANCEL_TIMEOUT_MS
    retry_backoff_ms: int = limits.RETRY_BACKOFF_MS


def _today_cst() -> dt.date:
    return dt.datetime.now(CHINA_STANDARD_TIME).date()


class Desk:
    """The terminal at one doctor's desk: a reader, the engine, the journal and the screen."""

    def __init__(
        self,
        stub: pb_grpc.SettlementServiceStub,
        journal: Journal,
        console: Console,
        settings: DeskSettings,
        *,
        reader: CardReaderPort | None = None,  # None: recovery only
        today: Callable[[], dt.date] = _today_cst,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if settings.unfinished not in UNFINISHED_POLICIES:
            raise ValueError(f"unfinished must be one of {UNFINISHED_POLICIES}")
        self.stub = stub
        self.reader = reader
        self.journal = journal
        self.console = console
        self.settings = settings
        self._today = today
        self._sleep = sleep
        self._metadata = settings.identity.metadata()

    # ---- recovery --------------------------------------------------------------------------------

    def recover(self) -> bool:
        """Resolve every unfinished settle in the journal; True when none is left."""
        for entry in self.journal.unfinished():
            self._resolve(entry)
        left = self.journal.unfinished()
        if left:
            self.console.say(
                f"尚有 {len(left)} 笔结算结果未知，下次启动将继续处理 "
                f"{len(left)} settle(s) still unknown: run the terminal again to resume (journal {self.journal.path})"
            )
        return not left

    def _resolve(self, entry: JournalEntry) -> Outcome:
        identity = self.settings.identity
        if (entry.hospital_id, entry.terminal_id) != (identity.hospital_id, identity.terminal_id):
            self.console.say(
                f"未完成的结算 {entry.request_id} 属于终端 {entry.hospital_id}/{entry.terminal_id}，本终端不能处理 "
                f"unfinished settle {entry.request_id} belongs to terminal {entry.hospital_id}/{entry.terminal_id}; "
                "run the terminal with that identity to resume it"
            )
            return Outcome.UNKNOWN
        for _ in range(limits.MAX_RESOLVE_ROUNDS):
            self._describe(entry)
            action = self._action_for(entry)
            if action == "later":
                return Outcome.UNKNOWN
            outcome = self._send_settle(entry) if action == "retry" else self._reverse(entry)
            if outcome is not Outcome.UNKNOWN:
                return outcome
            if not self._operator_present():
                return Outcome.UNKNOWN  # nobody to ask again: the next start resumes it
            entry = self.journal.entry(entry.request_id)
        return Outcome.UNKNOWN

    def _describe(self, entry: JournalEntry) -> None:
        self.console.say(
            f"未完成的结算 unfinished settle: request_id {entry.request_id}, quote {entry.quote_id}, "
            f"金额 amount {format_yuan(entry.amount_fen)}, 参保人 person {entry.person_number}, "
            f"卡号 card {entry.card_masked}, 状态 state {entry.state.value} ({entry.attempts} sent)"
        )
        if entry.state is State.REVERSE_REFUSED:
            self._show_refusal("冲正被拒绝 reversal refused", entry.reason, entry.message, "")

    def _action_for(self, entry: JournalEntry) -> str:
        if entry.state is State.REVERSING:  # a reversal may have happened: only finishing it is safe
            if self.settings.unfinished != "ask":
                return "reverse"
            answer = self.console.choose(
                "冲正结果未知 the reversal's outcome is unknown:",
                (("r", "重试冲正 resend the reversal"), ("l", "稍后 later")),
                default="r",
            )
            return "reverse" if answer == "r" else "later"
        if self.settings.unfinished != "ask":
            return self.settings.unfinished
        answer = self.console.choose(
            "处理方式 what now?",
            (
                ("r", "重发同一请求 resend the same request"),
                ("c", "冲正 reverse it (2601)"),
                ("l", "稍后 later"),
            ),
            default="r",
        )
        return {"r": "retry", "c": "reverse"}.get(answer, "later")

    # ---- a visit ---------------------------------------------------------------------------------

    def visit(self, charges: VisitCharges, *, person: str | None, person_map: Mapping[str, str]) -> Outcome:
        """One patient: card, PIN, quote, confirm, sign, settle, receipt. Starts only with a clean journal."""
        if not self.recover():
            self.console.say("先处理未完成的结算，本次不结算 resolve the unfinished settle first: visit not started")
            return Outcome.UNKNOWN
        if self.reader is None:
            raise ValueError("a visit needs a card reader")
        for attempt in range(1, limits.MAX_VISIT_ATTEMPTS + 1):
            try:
                return self._visit_once(self.reader, charges, person=person, person_map=person_map)
            except CardRemoved as error:  # before the card signed: nothing was sent, starting over is safe
                self.console.say(f"{error.message_zh}：本次未结算 card pulled: nothing was settled ({error.reason})")
                if attempt < limits.MAX_VISIT_ATTEMPTS:
                    self.console.say("请重新插卡 insert the card again")
            except CardError as error:
                self.console.say(f"{error.message_zh} ({error.reason}: {error.message})")
                return Outcome.CARD_FAILED
        return Outcome.CARD_FAILED

    def _visit_once(
        self, reader: CardReaderPort, charges: VisitCharges, *, person: str | None, person_map: Mapping[str, str]
    ) -> Outcome:
        name = self._wait_for_card(reader)
        with reader.connect(name) as channel:
            exchange = ApduExchange(channel)
            data = self._read_card(exchange)
            card_number = data.identification.card_number
            self.console.say(
                card_line(data.identification.masked_card_number, data.holder.name, data.holder.masked_citizen_id)
            )
            try:
                person_number = person_number_for(card_number, charges, person=person, person_map=person_map)
            except ChargesError as error:
                self.console.say(str(error))
                return Outcome.FAILED
            fields = visit_fields(
                charges,
                hospital_id=self.settings.identity.hospital_id,
                person_number=person_number,
                card_number=card_number,
                today=self._today(),
            )
            quote = self._quote(fields)
            if quote is None:
                return Outcome.FAILED
            for line in quote_lines(quote.split, quote.expire_time.ToDatetime(tzinfo=dt.UTC)):
                self.console.say(line)
            if not self.console.confirm("确认结算? settle this visit?"):
                self.console.say("已取消，未结算 declined: nothing was settled")
                return Outcome.DECLINED
            self.console.say("卡片签名中 the card is signing the amount …")
            signed = CitizenCard(exchange).generate_ac(
                GenerateAcRequest(
                    amount_fen=quote.split.total_fen,
                    transaction_date=signed_date(quote),
                    unpredictable_number=quote.unpredictable_number,
                    terminal_id=self.settings.identity.terminal_id,
                )
            )
        # The card is released (reset) here; the settle needs only what it signed.
        proof = charge_pb2.CardProof(
            card_number=card_number,
            transaction_counter=signed.counter,
            cryptogram=signed.cryptogram,
            quote_id=quote.quote_id,
        )
        request_id = str(uuid.uuid4())
        request = settle_request(fields, request_id, proof)
        entry = self.journal.prepare(
            request_id=request_id,
            hospital_id=self.settings.identity.hospital_id,
            terminal_id=self.settings.identity.terminal_id,
            quote_id=quote.quote_id,
            amount_fen=quote.split.total_fen,
            person_number=person_number,
            card_masked=mask(card_number),
            request=request.SerializeToString(deterministic=True),
        )
        outcome = self._send_settle(entry)
        if outcome is Outcome.UNKNOWN and self._operator_present():
            outcome = self._resolve(self.journal.entry(request_id))
        return outcome

    def _operator_present(self) -> bool:
        """Someone to ask; otherwise an unknown outcome waits in the journal for the next start."""
        return self.settings.unfinished == "ask" and not self.console.assume_yes

    def _wait_for_card(self, port: CardReaderPort) -> str:
        reader = self._reader_name(port)
        deadline = time.monotonic() + self.settings.card_wait_timeout_ms / 1000
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                self.console.end_progress()
                raise NoCard(f"no card presented within {self.settings.card_wait_timeout_ms} ms")
            self.console.progress(f"请插入市民卡 insert the citizen card … {remaining_ms // 1000} s")
            try:
                name = port.wait_for_card(reader, min(remaining_ms, limits.CARD_WAIT_PROGRESS_INTERVAL_MS))
            except NoCard:
                continue
            self.console.end_progress()
            return name

    def _reader_name(self, port: CardReaderPort) -> str | None:
        wanted = self.settings.reader
        if wanted is None or not wanted.isdigit():
            return wanted
        readers = port.list_readers()
        index = int(wanted)
        if index >= len(readers):
            raise NoReader(f"reader index {index}: only {len(readers)} reader(s) connected")
        return readers[index]

    def _read_card(self, exchange: ApduExchange) -> CitizenCardData:
        for _ in range(limits.MAX_PIN_PROMPTS - 1):
            pin = self.console.pin("请输入密码 PIN: ")
            try:
                return read_citizen_card(exchange, pin)
            except WrongPin as error:
                if not self.console.pin_can_be_retried:
                    raise
                left = error.tries_left
                self.console.say(f"{error.message_zh}，还可尝试 {left} 次 wrong PIN, {left} tries left")
            except InvalidPinFormat as error:
                if not self.console.pin_can_be_retried:
                    raise
                self.console.say(f"{error.message_zh} (4-12 digits)")
        return read_citizen_card(exchange, self.console.pin("请输入密码 PIN: "))

    def _quote(self, fields: dict[str, object]) -> pb.QuoteResponse | None:
        request = quote_request(fields)
        for attempt in range(1, limits.MAX_QUOTE_ATTEMPTS + 1):
            try:
                quote: pb.QuoteResponse = self.stub.Quote(
                    request, metadata=self._metadata, timeout=self.settings.quote_timeout_ms / 1000
                )
            except grpc.RpcError as error:
                answer = answer_of(error)
                if answer.definitive or attempt == limits.MAX_QUOTE_ATTEMPTS:
                    self._show_refusal("预结算失败 quote failed", answer.reason, answer.message, answer.message_zh)
                    return None
                self.console.say(f"预结算无应答，重试 no answer to the quote ({answer.code}), asking again")
                self._sleep(self.settings.retry_backoff_ms / 1000)
                continue
            return quote
        return None

    # ---- settle and reverse, each journaled before it is sent --------------------------------------------

    def _send_settle(self, entry: JournalEntry) -> Outcome:
        request = pb.SettleRequest.FromString(entry.request)
        if request.request_id != entry.request_id:
            raise TerminalInvariantViolated(f"the journaled request of {entry.request_id} carries another request_id")
        for attempt in range(1, limits.MAX_AUTOMATIC_ATTEMPTS + 1):
            self.journal.sent(entry.request_id)
            self.console.say(f"结算中 settling, request_id {entry.request_id} (attempt {attempt}) …")
            try:
                reply: pb.SettleResponse = self.stub.Settle(
                    request, metadata=self._metadata, timeout=self.settings.settle_timeout_ms / 1000
                )
            except grpc.RpcError as error:
                answer = answer_of(error)
                if answer.definitive:
                    self.journal.refused(entry.request_id, answer.reason, answer.message)
                    self._show_refusal("结算被拒绝 settle refused", answer.reason, answer.message, answer.message_zh)
                    return Outcome.REFUSED
                self._unknown(answer, "结算")
                if attempt < limits.MAX_AUTOMATIC_ATTEMPTS:
                    self._sleep(self.settings.retry_backoff_ms / 1000)
                continue
            settlement = reply.settlement
            _check_settled(entry, settlement)
            self.journal.settled(entry.request_id, settlement.settlement_id)
            for line in receipt(settlement):
                self.console.say(line)
            return Outcome.SETTLED
        return Outcome.UNKNOWN

    def _reverse(self, entry: JournalEntry) -> Outcome:
        cancel_id = entry.cancel_request_id if entry.state is State.REVERSING else str(uuid.uuid4())
        self.journal.reversing(entry.request_id, cancel_id)
        request = pb.CancelSettlementRequest(
            request_id=cancel_id, hospital_id=entry.hospital_id, original_request_id=entry.request_id
        )
        for attempt in range(1, limits.MAX_AUTOMATIC_ATTEMPTS + 1):
            self.console.say(f"冲正中 reversing request_id {entry.request_id} (attempt {attempt}) …")
            try:
                reply: pb.CancelSettlementResponse = self.stub.CancelSettlement(
                    request, metadata=self._metadata, timeout=self.settings.cancel_timeout_ms / 1000
                )
            except grpc.RpcError as error:
                answer = answer_of(error)
                if answer.definitive:
                    return self._reversal_refused(entry, answer)
                self._unknown(answer, "冲正")
                if attempt < limits.MAX_AUTOMATIC_ATTEMPTS:
                    self._sleep(self.settings.retry_backoff_ms / 1000)
                continue
            if reply.cancelled.request_id != entry.request_id:
                raise TerminalInvariantViolated(f"the reversal of {entry.request_id} cancelled another settlement")
            self.journal.reversed(entry.request_id, reply.cancellation.settlement_id)
            self.console.say(
                f"冲正成功 reversed: settlement {reply.cancelled.settlement_id} is cancelled by "
                f"{reply.cancellation.settlement_id}; {format_yuan(reply.cancelled.split.total_fen)} yuan returned"
            )
            return Outcome.REVERSED
        return Outcome.UNKNOWN

    def _reversal_refused(self, entry: JournalEntry, answer: Answer) -> Outcome:
        if answer.reason in (REASON_NOTHING_SETTLED, REASON_ALREADY_CANCELLED):
            self.journal.reversed(entry.request_id, "", answer.reason)
            what = "该请求未产生结算 nothing was settled under this request_id"
            if answer.reason == REASON_ALREADY_CANCELLED:
                what = "该结算已撤销 the settlement was already cancelled"
            self.console.say(f"冲正完成 reversal done: {what} ({answer.reason})")
            return Outcome.REVERSED
        self.journal.reverse_refused(entry.request_id, answer.reason, answer.message)
        self._show_refusal("冲正被拒绝 reversal refused", answer.reason, answer.message, answer.message_zh)
        return Outcome.UNKNOWN

    def _unknown(self, answer: Answer, doing: str) -> None:
        self.console.say(
            f"{doing}结果未知 outcome unknown ({answer.reason}: {answer.message or 'no reply'}); "
            "the same request_id will be resent, never a new one"
        )

    def _show_refusal(self, title: str, reason: str, message: str, message_zh: str) -> None:
        self.console.say(f"{title}: {message_zh or '(无中文说明)'}")
        self.console.say(f"  原因 reason {reason}: {message}")


def _check_settled(entry: JournalEntry, settlement: settlement_pb2.Settlement) -> None:
    """Checked before the journal says settled: the engine answered for this request and this amount."""
    if settlement.request_id != entry.request_id:
        raise TerminalInvariantViolated(
            f"the engine answered request_id {settlement.request_id} for {entry.request_id}"
        )
    if settlement.split.total_fen != entry.amount_fen:
        raise TerminalInvariantViolated(
            f"settlement {settlement.settlement_id} totals {settlement.split.total_fen} fen; "
            f"the card signed {entry.amount_fen} fen"
        )
