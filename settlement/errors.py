"""The exception tree of the engine, written down once.

Every refusal the engine can give is a class here. Each class knows its canonical gRPC status (by name,
so this module stays standard-library only), its stable UPPER_SNAKE reason, an English message that says
what to do, and a Chinese message for the cashier. The gRPC layer maps these generically: there is no
``except`` ladder anywhere else.

    SettlementError
    ├── InvalidInput                      INVALID_ARGUMENT
    │   ├── InvalidDecimal                DECIMAL_FORMAT
    │   ├── InvalidAmount                 INVALID_AMOUNT
    │   ├── InvalidField                  INVALID_FIELD
    │   ├── EmptyCharge                   EMPTY_CHARGE
    │   ├── TooManyLines                  TOO_MANY_LINES
    │   ├── UnknownItemCode               UNKNOWN_ITEM_CODE
    │   ├── UnknownCategory               UNKNOWN_CATEGORY
    │   ├── InvalidRequestId              INVALID_REQUEST_ID
    │   └── InvalidImportFile             INVALID_IMPORT_FILE
    ├── NotFound                          NOT_FOUND
    │   ├── PersonNotFound                PERSON_NOT_FOUND
    │   ├── CardNotFound                  CARD_NOT_FOUND
    │   ├── HospitalNotFound              HOSPITAL_NOT_FOUND
    │   ├── SettlementNotFound            SETTLEMENT_NOT_FOUND
    │   └── QuoteNotFound                 QUOTE_NOT_FOUND
    ├── RefusedByState                    FAILED_PRECONDITION
    │   ├── NoPolicyInForce               NO_POLICY_IN_FORCE
    │   ├── AlreadyCancelled              ALREADY_CANCELLED
    │   ├── CardBlocked                   CARD_BLOCKED
    │   ├── CardLost                      CARD_LOST
    │   ├── LineNotInSettlement           LINE_NOT_IN_SETTLEMENT
    │   ├── DayAlreadyClosed              DAY_ALREADY_CLOSED
    │   ├── DatabaseNotMigrated           DATABASE_NOT_MIGRATED
    │   ├── CardNotOfPerson               CARD_NOT_OF_PERSON
    │   ├── InsuredTypeMismatch           INSURED_TYPE_MISMATCH
    │   ├── CardProofRequired             CARD_PROOF_REQUIRED
    │   ├── CryptogramInvalid             CRYPTOGRAM_INVALID
    │   ├── AmountDiffersFromQuote        AMOUNT_DIFFERS_FROM_QUOTE
    │   ├── QuoteExpired                  QUOTE_EXPIRED
    │   ├── QuoteAlreadyUsed              QUOTE_ALREADY_USED
    │   └── CounterNotIncreased           COUNTER_NOT_INCREASED
    ├── RequestIdReused                   ALREADY_EXISTS
    ├── PermissionDenied                  PERMISSION_DENIED
    │   └── OtherHospital                 OTHER_HOSPITAL
    ├── Unauthenticated                   UNAUTHENTICATED
    └── Unavailable                       UNAVAILABLE
        └── DeadlineTooShort              DEADLINE_EXCEEDED

``InvariantViolated`` is deliberately *not* a ``SettlementError``: a broken invariant is a bug, the
operation is aborted and nothing is written; it is never turned into a normal reply.

Messages must never contain a full citizen ID or card number: callers pass masked forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

ERROR_DOMAIN = "settlement.clinic"


class SettlementError(Exception):
    """A refusal with a stable reason. Subclasses set ``status``, ``reason`` and ``message_zh``."""

    status: ClassVar[str] = "UNKNOWN"
    reason: ClassVar[str] = "UNKNOWN"
    message_zh: ClassVar[str] = "结算失败，请联系信息科"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, SettlementError)
            and other.message == self.message
            and other.metadata == self.metadata
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.message))

    def as_record(self) -> dict[str, object]:
        """A JSON-able form, stored with a refused request so a retry repeats the same refusal."""
        return {"reason": self.reason, "message": self.message, "metadata": dict(self.metadata)}

    @staticmethod
    def from_record(record: Mapping[str, object]) -> SettlementError:
        reason = str(record["reason"])
        cls = _BY_REASON.get(reason, SettlementError)
        raw_metadata = record.get("metadata") or {}
        metadata = {str(k): str(v) for k, v in dict(raw_metadata).items()}  # type: ignore[call-overload]
        return cls(str(record["message"]), metadata=metadata)


class InvalidInput(SettlementError):
    status = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"
    message_zh = "请求数据有误，请核对后重试"

    def __init__(self, message: str, *, field: str, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, metadata={"field": field, **(metadata or {})})
        self.field = field


class InvalidDecimal(InvalidInput):
    reason = "DECIMAL_FORMAT"
    message_zh = "数值格式有误（小数位数或范围不符）"


class InvalidAmount(InvalidInput):
    reason = "INVALID_AMOUNT"
    message_zh = "金额有误"


class InvalidField(InvalidInput):
    reason = "INVALID_FIELD"
    message_zh = "字段取值有误"


class EmptyCharge(InvalidInput):
    reason = "EMPTY_CHARGE"
    message_zh = "费用明细为空"


class TooManyLines(InvalidInput):
    reason = "TOO_MANY_LINES"
    message_zh = "费用明细条数超过上限，请分单结算"


class UnknownItemCode(InvalidInput):
    reason = "UNKNOWN_ITEM_CODE"
    message_zh = "项目编码不在医保目录中，请核对对照表"


class UnknownCategory(InvalidInput):
    reason = "UNKNOWN_CATEGORY"
    message_zh = "收费项目等级有误（应为甲、乙、丙类）"


class InvalidRequestId(InvalidInput):
    reason = "INVALID_REQUEST_ID"
    message_zh = "请求流水号格式有误"


class InvalidImportFile(InvalidInput):
    reason = "INVALID_IMPORT_FILE"
    message_zh = "导入文件有误，未导入任何数据"


class NotFound(SettlementError):
    status = "NOT_FOUND"
    reason = "NOT_FOUND"
    message_zh = "未找到记录"


class PersonNotFound(NotFound):
    reason = "PERSON_NOT_FOUND"
    message_zh = "未找到参保人员信息"


class CardNotFound(NotFound):
    reason = "CARD_NOT_FOUND"
    message_zh = "未找到该卡信息"


class HospitalNotFound(NotFound):
    reason = "HOSPITAL_NOT_FOUND"
    message_zh = "未找到该医院"


class SettlementNotFound(NotFound):
    reason = "SETTLEMENT_NOT_FOUND"
    message_zh = "未找到该结算记录"


class QuoteNotFound(NotFound):
    reason = "QUOTE_NOT_FOUND"
    message_zh = "未找到预结算记录，请重新预结算"


class RefusedByState(SettlementError):
    status = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"
    message_zh = "当前状态不允许此操作"


class NoPolicyInForce(RefusedByState):
    reason = "NO_POLICY_IN_FORCE"
    message_zh = "结算日期无有效医保政策"


class AlreadyCancelled(RefusedByState):
    reason = "ALREADY_CANCELLED"
    message_zh = "该笔结算已撤销"


class CardBlocked(RefusedByState):
    reason = "CARD_BLOCKED"
    message_zh = "该卡已冻结，请到社保窗口办理"


class CardLost(RefusedByState):
    reason = "CARD_LOST"
    message_zh = "该卡已挂失，不能使用"


class LineNotInSettlement(RefusedByState):
    reason = "LINE_NOT_IN_SETTLEMENT"
    message_zh = "退费明细不属于该笔结算"


class DayAlreadyClosed(RefusedByState):
    reason = "DAY_ALREADY_CLOSED"
    message_zh = "该日已日结，不能再记账"


class DatabaseNotMigrated(RefusedByState):
    reason = "DATABASE_NOT_MIGRATED"
    message_zh = "数据库未升级，请联系信息科"


class CardNotOfPerson(RefusedByState):
    reason = "CARD_NOT_OF_PERSON"
    message_zh = "该卡不属于此参保人"


class InsuredTypeMismatch(RefusedByState):
    reason = "INSURED_TYPE_MISMATCH"
    message_zh = "险种与参保登记不符"


class CardProofRequired(RefusedByState):
    reason = "CARD_PROOF_REQUIRED"
    message_zh = "本院要求刷卡结算，请插卡并输入密码"


class CryptogramInvalid(RefusedByState):
    reason = "CRYPTOGRAM_INVALID"
    message_zh = "卡片验证失败，请重新刷卡"


class AmountDiffersFromQuote(RefusedByState):
    reason = "AMOUNT_DIFFERS_FROM_QUOTE"
    message_zh = "结算金额与预结算金额不一致，请重新预结算"


class QuoteExpired(RefusedByState):
    reason = "QUOTE_EXPIRED"
    message_zh = "预结算已过期，请重新预结算"


class QuoteAlreadyUsed(RefusedByState):
    reason = "QUOTE_ALREADY_USED"
    message_zh = "该预结算已用于一笔结算，请重新预结算"


class CounterNotIncreased(RefusedByState):
    reason = "COUNTER_NOT_INCREASED"
    message_zh = "卡片交易计数器异常，请联系社保窗口"


class RequestIdReused(SettlementError):
    status = "ALREADY_EXISTS"
    reason = "REQUEST_ID_REUSED"
    message_zh = "请求流水号已被另一笔不同的请求使用"


class PermissionDenied(SettlementError):
    status = "PERMISSION_DENIED"
    reason = "PERMISSION_DENIED"
    message_zh = "无权执行此操作"


class OtherHospital(PermissionDenied):
    reason = "OTHER_HOSPITAL"
    message_zh = "只能操作本院的记录"


class Unauthenticated(SettlementError):
    status = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"
    message_zh = "终端身份认证失败"


class Unavailable(SettlementError):
    status = "UNAVAILABLE"
    reason = "UNAVAILABLE"
    message_zh = "服务暂不可用，请稍后用同一流水号重试"


class DeadlineTooShort(Unavailable):
    status = "DEADLINE_EXCEEDED"
    reason = "DEADLINE_EXCEEDED"
    message_zh = "处理超时，请用同一流水号重试"


class InvariantViolated(Exception):
    """A broken money invariant. A bug: abort, write nothing, never reply as if it were normal."""


def _all_subclasses(cls: type[SettlementError]) -> list[type[SettlementError]]:
    found: list[type[SettlementError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def error_classes() -> list[type[SettlementError]]:
    """Every refusal the engine can give; the docs table and its test are generated from this."""
    return [SettlementError, *_all_subclasses(SettlementError)]


_BY_REASON: dict[str, type[SettlementError]] = {cls.reason: cls for cls in error_classes()}
