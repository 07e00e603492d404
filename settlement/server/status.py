"""Refusals on the wire: a ``SettlementError`` becomes a rich gRPC status; anything else becomes INTERNAL.

Owns: the AIP-193 mapping (canonical code, English message, exactly one ``google.rpc.ErrorInfo`` with
reason, domain and metadata, one zh-CN ``google.rpc.LocalizedMessage``), the interceptor that applies it
around every unary handler so servicers just raise, and ``error_info_of`` for clients. Must never send an
unexpected exception's text to the caller: a bug (``InvariantViolated`` or anything unforeseen) is logged
here and answered with a fixed INTERNAL message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]  # .pyi, no py.typed
from grpc_status import rpc_status

from settlement.errors import ERROR_DOMAIN, InvariantViolated, SettlementError

LOCALE = "zh-CN"
INTERNAL_REASON = "INTERNAL"
INTERNAL_MESSAGE = (
    "internal error: the operation was aborted and nothing was written; do not retry, "
    "report the time and request_id to hospital IT"
)
INTERNAL_MESSAGE_ZH = "系统内部错误，本次操作未生效，请联系信息科"

_log = logging.getLogger(__name__)


def rich_status(error: SettlementError) -> grpc.Status:
    code = getattr(grpc.StatusCode, error.status, grpc.StatusCode.UNKNOWN)
    return _status(code, error.reason, error.message, error.message_zh, error.metadata)


def internal_status() -> grpc.Status:
    return _status(grpc.StatusCode.INTERNAL, INTERNAL_REASON, INTERNAL_MESSAGE, INTERNAL_MESSAGE_ZH, {})


def status_of(error: Exception) -> grpc.Status:
    """The status to send for any exception a handler raised."""
    return rich_status(error) if isinstance(error, SettlementError) else internal_status()


def abort_with(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    context.abort_with_status(status_of(error))


def _status(
    code: grpc.StatusCode, reason: str, message: str, message_zh: str, metadata: dict[str, str]
) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    localized = error_details_pb2.LocalizedMessage(locale=LOCALE, message=message_zh)
    details = []
    for detail in (info, localized):
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    number: int = code.value[0]
    return rpc_status.to_status(status_pb2.Status(code=number, message=message, details=details))


Behaviour = Callable[[Any, grpc.ServicerContext], Any]


class StatusInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Turns whatever a unary handler raises into the documented status; streams pass untouched."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _guarded(handler.unary_unary, handler_call_details.method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _guarded(behaviour: Behaviour, method: str) -> Behaviour:
    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behaviour(request, context)
        except SettlementError as error:
            abort_with(context, error)
        except InvariantViolated:
            _log.exception("invariant violated in %s: aborted, nothing written", method)
            context.abort_with_status(internal_status())
        except Exception as error:
            if _already_aborted(context):
                raise  # the handler called context.abort itself: its status stands
            _log.exception("unexpected %s in %s", type(error).__name__, method)
            abort_with(context, error)

    return guarded


def _already_aborted(context: grpc.ServicerContext) -> bool:
    code_of = getattr(context, "code", None)  # grpc >= 1.38; not in grpc-stubs
    return callable(code_of) and code_of() not in (None, grpc.StatusCode.OK)


# ---- client side -----------------------------------------------------------------------------------


def details_of(error: grpc.RpcError) -> list[any_pb2.Any]:
    """The packed details of a refusal (empty when the server sent none, e.g. a transport failure)."""
    status = rpc_status.from_call(cast(grpc.Call, error))
    return list(status.details) if status is not None else []


def error_info_of(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ``ErrorInfo`` of a refusal: ``.reason``, ``.domain``, ``.metadata``; None without one."""
    for detail in details_of(error):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def localized_message_of(error: grpc.RpcError) -> str | None:
    """The cashier's message (zh-CN) of a refusal, or None."""
    for detail in details_of(error):
        if detail.Is(error_details_pb2.LocalizedMessage.DESCRIPTOR):
            shown = error_details_pb2.LocalizedMessage()
            detail.Unpack(shown)
            return str(shown.message)
    return None
