"""The exception tree of the card layer, written down once.

Every failure a caller of ``cardio`` has to handle is a class here; anything else escaping the package is
a bug. Each class has a stable UPPER_SNAKE ``reason`` (for logs, metrics and the terminal's journal) and a
Chinese ``message_zh`` the desk shows the patient or the doctor.

    CardError
    ├── PcscUnavailable          NO_PCSC_SERVICE       pcscd not running / pyscard not installed
    ├── NoReader                 NO_READER             no reader connected, or not the one asked for
    ├── ReaderFailure            READER_FAILURE        any other PC/SC failure (busy reader, driver error)
    ├── NoCard                   NO_CARD               no card in the reader (within the wait)
    ├── CardRemoved              CARD_REMOVED          the card left the reader during the flow
    ├── CardTimeout              CARD_TIMEOUT          the card did not answer within the deadline
    ├── NotACitizenCard          NOT_A_CITIZEN_CARD    no social-security application on the card
    ├── PinError
    │   ├── InvalidPinFormat     INVALID_PIN_FORMAT    refused before it reached the card
    │   ├── WrongPin             WRONG_PIN             ``tries_left`` says how many remain
    │   ├── PinBlocked           PIN_BLOCKED           no tries left (6983)
    │   └── PinRequired          PIN_REQUIRED          6982: the PIN was not verified on this connection
    ├── UnexpectedStatusWord     UNEXPECTED_STATUS_WORD  ``status_word`` holds the SW1SW2
    └── MalformedResponse        MALFORMED_RESPONSE    the card answered bytes we cannot parse

Messages never contain a PIN, a full citizen ID or a full card number.
"""

from __future__ import annotations

from typing import ClassVar


class CardError(Exception):
    """A card-layer failure with a stable reason."""

    reason: ClassVar[str] = "CARD_ERROR"
    message_zh: ClassVar[str] = "读卡失败，请重新插卡"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PcscUnavailable(CardError):
    reason = "NO_PCSC_SERVICE"
    message_zh = "读卡服务未启动，请联系信息科"


class NoReader(CardError):
    reason = "NO_READER"
    message_zh = "未检测到读卡器，请检查连接"


class ReaderFailure(CardError):
    reason = "READER_FAILURE"
    message_zh = "读卡器故障，请重新插卡或更换读卡器"


class NoCard(CardError):
    reason = "NO_CARD"
    message_zh = "请插入市民卡"


class CardRemoved(CardError):
    reason = "CARD_REMOVED"
    message_zh = "卡片已拔出，请重新插卡"


class CardTimeout(CardError):
    reason = "CARD_TIMEOUT"
    message_zh = "卡片无响应，请重新插卡"


class NotACitizenCard(CardError):
    reason = "NOT_A_CITIZEN_CARD"
    message_zh = "不是市民卡（社会保障卡）"


class PinError(CardError):
    reason = "PIN_ERROR"
    message_zh = "密码验证失败"


class InvalidPinFormat(PinError):
    reason = "INVALID_PIN_FORMAT"
    message_zh = "密码格式有误，请输入数字密码"


class WrongPin(PinError):
    reason = "WRONG_PIN"
    message_zh = "密码错误"

    def __init__(self, message: str, *, tries_left: int) -> None:
        super().__init__(message)
        self.tries_left = tries_left


class PinBlocked(PinError):
    reason = "PIN_BLOCKED"
    message_zh = "密码已锁定，请到社保窗口解锁"


class PinRequired(PinError):
    reason = "PIN_REQUIRED"
    message_zh = "请先输入密码"


class UnexpectedStatusWord(CardError):
    reason = "UNEXPECTED_STATUS_WORD"
    message_zh = "卡片返回异常，请重新插卡"

    def __init__(self, message: str, *, status_word: int) -> None:
        super().__init__(message)
        self.status_word = status_word


class MalformedResponse(CardError):
    reason = "MALFORMED_RESPONSE"
    message_zh = "卡片数据有误，请重新插卡"
