"""Refusals on the wire: a ``SettlementError`` becomes a rich gRPC status; anything else becomes INTERNAL.

Owns: the AIP-193 mapping (canonical code, English message, exactly one ``google.rpc.ErrorInfo`` with
reason, domain and metadata, one zh-CN ``google.rpc.LocalizedMessage``), the interceptor that applies it
around every unary handler so servicers just raise, and ``error_info_of`` for clients. Must never send an
unexpected exception's text to the caller: a bug (``InvariantViolated`` or anything unforeseen) is logged
here and answered with a fixed INTERNAL message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
import grpc.aio
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


Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class StatusInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Turns whatever a unary handler raises into the documented status; streams pass untouched."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _guarded(cast(Behaviour, handler.unary_unary), handler_call_details.method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> None:
    await context.abort_with_status(status)  # type: ignore[attr-defined]  # in grpc.aio, not in grpc-stubs


def _guarded(behaviour: Behaviour, method: str) -> Behaviour:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise  # the handler called context.abort itself: its status stands
        except SettlementError as error:
            await _abort(context, rich_status(error))
        except InvariantViolated:
            _log.exception("invariant violated in %s: aborted, nothing written", method)
            await _abort(context, internal_status())
        except Exception as error:
            _log.exception("unexpected %s in %s", type(error).__name__, method)
            await _abort(context, internal_status())

    return guarded


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
