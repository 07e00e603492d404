"""What the server tells operators about itself: Prometheus series and one log line per RPC.

Owns: the server's own ``CollectorRegistry`` (never the global default, so tests and two servers in one
process do not mix), the series and their buckets, the interceptor that observes every unary RPC, and the
HTTP endpoint. Must never label a series with, or log, a request field: labels are the method name and
the outcome reason, both bounded sets; log lines carry the terminal and a masked operator, never a body.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from wsgiref.simple_server import WSGIServer

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from settlement.errors import InvariantViolated, SettlementError
from settlement.identity import mask
from settlement.server.identity import OPERATOR_METADATA, peer_terminal

SETTLE_METHOD = "clinic.settlement.v1.SettlementService/Settle"
# Seconds, as Prometheus wants, with the resolution where settles live: 0.5 ms to 50 ms, then coarse.
LATENCY_BUCKETS_SECONDS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)
COMMIT_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)  # group commit takes at most MAX_SETTLES_PER_COMMIT

_access_log = logging.getLogger("settlement.rpc")
_HEALTH_PREFIX = "grpc.health.v1.Health/"


@dataclass(frozen=True)
class ServerMetrics:
    registry: CollectorRegistry
    settle_duration: Histogram
    rpc_duration: Histogram
    rpcs: Counter
    in_flight: Gauge
    commit_duration: Histogram
    commit_batch_size: Histogram

    @classmethod
    def create(cls) -> ServerMetrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            settle_duration=Histogram(
                "settlement_settle_duration_seconds", "Settle calls, from arrival to reply, every outcome.",
                buckets=LATENCY_BUCKETS_SECONDS, registry=registry,
            ),
            rpc_duration=Histogram(
                "settlement_rpc_duration_seconds", "Unary calls by method, from arrival to reply.",
                ["method"], buckets=LATENCY_BUCKETS_SECONDS, registry=registry,
            ),
            rpcs=Counter(
                "settlement_rpcs", "Unary calls by method and outcome: OK or the ErrorInfo reason.",
                ["method", "reason"], registry=registry,
            ),
            in_flight=Gauge("settlement_rpcs_in_flight", "Unary calls being handled now.", registry=registry),
            commit_duration=Histogram(
                "settlement_db_commit_duration_seconds", "Database commits of settles, one per group commit.",
                buckets=LATENCY_BUCKETS_SECONDS, registry=registry,
            ),
            commit_batch_size=Histogram(
                "settlement_db_commit_batch_size", "Settles carried by one database commit.",
                buckets=COMMIT_BATCH_BUCKETS, registry=registry,
            ),
        )

    def observe_commit(self, duration_seconds: float, batch_size: int) -> None:
        """For the storage writer: one call per database commit."""
        self.commit_duration.observe(duration_seconds)
        self.commit_batch_size.observe(batch_size)


Context = grpc.aio.ServicerContext[Any, Any]
Behaviour = Callable[[Any, Context], Awaitable[Any]]


class ObservingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Counts, times and logs every unary call. Placed inside the status interceptor, so it sees the
    refusal itself (its reason) rather than the abort that carries it."""

    def __init__(self, metrics: ServerMetrics, *, dev_mode: bool) -> None:
        self._metrics = metrics
        self._dev_mode = dev_mode

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        # Unknown methods never get here (handler None), so a caller cannot invent label values.
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._observed(cast(Behaviour, handler.unary_unary), handler_call_details.method.lstrip("/")),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _observed(self, behaviour: Behaviour, method: str) -> Behaviour:
        metrics = self._metrics

        async def observed(request: Any, context: Context) -> Any:
            metrics.in_flight.inc()
            started = time.perf_counter()
            reason = "INTERNAL"
            try:
                response = await behaviour(request, context)
                reason = "CANCELLED" if context.cancelled() else "OK"
                return response
            except SettlementError as error:
                reason = error.reason
                raise
            except InvariantViolated:
                raise
            except asyncio.CancelledError:
                reason = "CANCELLED"
                raise
            except grpc.aio.AbortError:
                reason = _aborted_code(context) or "INTERNAL"
                raise
            finally:
                elapsed = time.perf_counter() - started
                metrics.in_flight.dec()
                metrics.rpcs.labels(method, reason).inc()
                metrics.rpc_duration.labels(method).observe(elapsed)
                if method == SETTLE_METHOD:
                    metrics.settle_duration.observe(elapsed)
                level = logging.DEBUG if method.startswith(_HEALTH_PREFIX) else logging.INFO  # probes: quiet
                if _access_log.isEnabledFor(level):
                    self._log(level, method, reason, elapsed, context)

        return observed

    def _log(self, level: int, method: str, reason: str, elapsed: float, context: Context) -> None:
        terminal = peer_terminal(context, dev_mode=self._dev_mode)
        operators = [value for key, value in context.invocation_metadata() or () if key == OPERATOR_METADATA]
        operator = mask(operators[0]) if operators and isinstance(operators[0], str) else "-"
        _access_log.log(
            level,
            "rpc method=%s outcome=%s duration_ms=%.2f hospital=%s terminal=%s operator=%s",
            method, reason, elapsed * 1000,
            terminal.hospital_id if terminal else "-", terminal.terminal_id if terminal else "-", operator,
        )


def _aborted_code(context: Context) -> str | None:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK else None


@dataclass(frozen=True)
class MetricsEndpoint:
    """The running ``/metrics`` HTTP server."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(address: str, registry: CollectorRegistry) -> MetricsEndpoint:
    """Serve ``registry`` at ``http://ADDRESS/metrics`` from a daemon thread; port 0 picks a free port."""
    host, _, port = address.rpartition(":")
    server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    return MetricsEndpoint(server, thread)
