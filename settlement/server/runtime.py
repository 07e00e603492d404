"""The server process: the gRPC listener, its options, health, reflection, signals and draining.

Owns: how the ``grpc.aio`` server is built (every option explicit, with why) and the event-loop thread it
runs on, mTLS unless dev mode, the health service (SERVING only while ``ready()`` holds, NOT_SERVING from
the first moment of a drain), reflection when configured, the order of a graceful stop on SIGTERM/SIGINT,
and the log format with its last-line masking. Must never decide anything about settlements: the servicer
is handed in through ``register``.

Why one event loop: every call's Python work (parse, identify, group commit, reply) runs on the loop's
thread, so calls never wait for one another's thread to give up the interpreter lock. With the thread-pool
server, 32 desks made 47 thread switches per settle and half the server's CPU went to the kernel.
Servicers are ``async``; blocking work (PostgreSQL reads) goes to the loop's thread pool.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent import futures
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO, TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer  # what health.aio names; the stubs lack it
from grpc_reflection.v1alpha import reflection

from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2
from settlement.server.config import ServerConfig, ServerLimits, TlsFiles
from settlement.server.metrics import MetricsEndpoint, ObservingInterceptor, ServerMetrics, start_metrics_server
from settlement.server.status import StatusInterceptor

SERVICE_NAME: str = settlement_service_pb2.DESCRIPTOR.services_by_name["SettlementService"].full_name
HEALTH_SERVICES = ("", SERVICE_NAME)  # "" is the whole server, as probes ask by default

_log = logging.getLogger(__name__)
Result = TypeVar("Result")


class ServerStartError(Exception):
    """The server could not start (address in use, unreadable TLS files)."""


def server_options(limits: ServerLimits, *, share_port: bool = False) -> list[tuple[str, int]]:
    return [
        # A request larger than the largest legal one is refused with RESOURCE_EXHAUSTED before parsing.
        ("grpc.max_receive_message_length", limits.max_receive_message_bytes),
        # A reply larger than this fails instead of tying up a worker; the caller asks for a smaller page.
        ("grpc.max_send_message_length", limits.max_send_message_bytes),
        # Ping idle connections so a terminal that vanished (unplugged, NAT timeout) is noticed and closed.
        ("grpc.keepalive_time_ms", limits.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", limits.keepalive_timeout_ms),
        # Terminals keep their channel warm between patients: their pings are fine with no call in flight,
        # and the server keeps pinging idle connections too (0 = no cap on pings without data).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Keepalive enforcement: a client pinging more often than this earns a strike; after
        # max_ping_strikes it gets GOAWAY (ENHANCE_YOUR_CALM), so no client can flood us with pings.
        ("grpc.http2.min_ping_interval_without_data_ms", limits.min_client_ping_interval_ms),
        ("grpc.http2.max_ping_strikes", limits.max_ping_strikes),
        # One server per port: a second process on the same port must fail to start, not share it quietly;
        # except the processes one ``settlement serve`` started to share it ([limits].processes).
        ("grpc.so_reuseport", 1 if share_port else 0),
    ]


class ServerLoop:
    """An asyncio event loop on its own thread: the server and every call run on it."""

    def __init__(self, worker_threads: int) -> None:
        self.loop = asyncio.new_event_loop()
        # Blocking work the servicer hands off (PostgreSQL reads) runs here, never on the loop itself.
        self.executor = futures.ThreadPoolExecutor(max_workers=worker_threads, thread_name_prefix="rpc")
        self.loop.set_default_executor(self.executor)
        self._thread = threading.Thread(target=self.loop.run_forever, name="grpc-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Result]) -> Result:
        """Run ``coroutine`` on the loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.executor.shutdown(wait=True)
        self.loop.close()


@dataclass
class RunningServer:
    """A started server; ``drain`` stops it gracefully, ``close`` at once (tests)."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer
    metrics: ServerMetrics
    metrics_endpoint: MetricsEndpoint | None
    limits: ServerLimits
    loop: ServerLoop  # the calls' event loop: ``loop.run(coroutine)`` from another thread
    _readiness: _Readiness
    _closed: bool = field(default=False)

    def drain(self) -> None:
        """NOT_SERVING; keep serving for the notice period so balancers see it; refuse new calls and
        give in-flight calls the grace period; then stop."""
        self._readiness.stop()
        self.loop.run(self.health.enter_graceful_shutdown())
        _log.info(
            "draining: health NOT_SERVING, new calls refused in %.1f s, in-flight calls get %.1f s",
            self.limits.drain_notice_seconds, self.limits.drain_grace_seconds,
        )
        time.sleep(self.limits.drain_notice_seconds)
        self.loop.run(self.server.stop(self.limits.drain_grace_seconds))
        _log.info("listener stopped: every call answered, or cancelled at the end of the grace period")
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._readiness.stop()
        self.loop.run(self.server.stop(None))
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        self.loop.close()


def build_server(
    config: ServerConfig,
    register: Callable[[grpc.aio.Server], None],
    ready: Callable[[], bool],
    *,
    metrics: ServerMetrics | None = None,
) -> RunningServer:
    """Build, bind and start the server on its own event loop; ``register`` adds the settlement servicer
    (an ``async`` one: its methods run on that loop)."""
    limits = config.limits
    metrics = metrics or ServerMetrics.create()
    loop = ServerLoop(limits.worker_threads)
    try:
        server, health_servicer, port = loop.run(_start(config, register, metrics))
    except BaseException:
        loop.close()
        raise
    readiness = _Readiness(health_servicer, ready, limits.health_poll_interval_ms / 1000, loop)
    endpoint = None
    try:
        readiness.start()
        if config.metrics_listen:
            endpoint = start_metrics_server(config.metrics_listen, metrics.registry)
    except BaseException:
        readiness.stop()
        loop.run(server.stop(None))
        loop.close()
        raise
    return RunningServer(server, port, health_servicer, metrics, endpoint, limits, loop, readiness)


async def _start(
    config: ServerConfig, register: Callable[[grpc.aio.Server], None], metrics: ServerMetrics
) -> tuple[grpc.aio.Server, HealthServicer, int]:
    limits = config.limits
    server = grpc.aio.server(
        # Outermost first: the status interceptor maps what the observing one saw and let through.
        interceptors=[StatusInterceptor(), ObservingInterceptor(metrics, dev_mode=config.dev_mode)],
        options=server_options(limits, share_port=config.share_port),
        # Admitted calls (running or waiting for their commit) are bounded; beyond: RESOURCE_EXHAUSTED.
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
    )
    health_servicer = HealthServicer()
    for service in HEALTH_SERVICES:
        await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        register(server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        if config.reflection:
            reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        port = _bind(server, config)
        await server.start()
    except BaseException:
        await server.stop(None)
        raise
    return server, health_servicer, port


def _bind(server: grpc.aio.Server, config: ServerConfig) -> int:
    try:
        if config.tls is None:
            _log.warning(
                "DEV MODE: plaintext, no client certificates; callers name themselves with x-dev-hospital-id "
                "and x-dev-terminal-id metadata. Never expose this listener (%s) beyond a developer's machine.",
                config.listen,
            )
            return server.add_insecure_port(config.listen)
        return server.add_secure_port(config.listen, _credentials(config.tls))
    except RuntimeError as error:
        raise ServerStartError(f"cannot listen on {config.listen}: {error}") from None


def _credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    try:
        certificate, key, client_ca = (path.read_bytes() for path in (tls.cert_file, tls.key_file, tls.client_ca_file))
    except OSError as error:
        raise ServerStartError(f"cannot read TLS file {error.filename}: {error.strerror}") from None
    # require_client_auth: the handshake itself refuses a terminal without a certificate from client_ca.
    return grpc.ssl_server_credentials([(key, certificate)], root_certificates=client_ca, require_client_auth=True)


class _Readiness:
    """Polls ``ready()`` and sets health; logs only the changes."""

    def __init__(
        self, servicer: HealthServicer, ready: Callable[[], bool], interval_seconds: float, loop: ServerLoop
    ) -> None:
        self._servicer = servicer
        self._loop = loop
        self._ready = ready
        self._interval_seconds = interval_seconds
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)
        self._serving: bool | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._check_once()
            self._stopped.wait(self._interval_seconds)

    def _check_once(self) -> None:
        try:
            serving = bool(self._ready())
        except Exception as error:
            serving = False
            if self._serving is not False:
                _log.warning("readiness check failed: %s", type(error).__name__)
        if serving == self._serving or self._stopped.is_set():
            return
        self._serving = serving
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in HEALTH_SERVICES:
            self._loop.run(self._servicer.set(service, status))
        _log.info("health %s", "SERVING" if serving else "NOT_SERVING")


def run_server(
    config: ServerConfig,
    register: Callable[[grpc.aio.Server], None],
    ready: Callable[[], bool],
    on_drain: Callable[[], None] | None = None,
    *,
    metrics: ServerMetrics | None = None,
    on_started: Callable[[RunningServer], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain, call ``on_drain`` and return. Call from the main thread.

    ``metrics``: pass the one the storage writer reports commits to (a fresh one otherwise).
    ``on_started`` sees the running server (its bound port when listening on port 0)."""
    signals = SignalLatch()
    signals.install()
    try:
        running = build_server(config, register, ready, metrics=metrics)
        _log.info(
            "settlement server listening on %s (%s), reflection %s, metrics %s",
            _with_port(config.listen, running.port), "dev mode, plaintext" if config.dev_mode else "mTLS",
            "on" if config.reflection else "off",
            _with_port(config.metrics_listen, running.metrics_endpoint.port) if running.metrics_endpoint else "off",
        )
        try:
            quiet_garbage_collector()
            if on_started is not None:
                on_started(running)
            signals.wait()
            _log.info("received %s", signals.name)
            running.drain()
            if on_drain is not None:
                on_drain()
        finally:
            running.close()
    finally:
        signals.restore()
    _log.info("stopped")


# Young objects allocated (net of those freed) before the collector looks at them; Python's default is
# 700. A call allocates a few hundred tracked objects that almost all die by reference counting, so the
# default ran a young collection every few calls (150 ms per 20 s per process under load).
YOUNG_OBJECTS_PER_COLLECTION = 10_000


def quiet_garbage_collector() -> None:
    """Move everything start-up built (modules, policies, statements, gRPC machinery) out of the cyclic
    collector's sight and let it run less often.

    Why: a full collection walked every object the process ever built and held the event loop, and so
    every call in flight, for up to 33 ms; under load that was the slowest 1 % of settles.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION, middle, old)


class SignalLatch:
    """Remembers the first SIGTERM/SIGINT. The handler only sets an attribute: taking a lock inside a
    signal handler can deadlock the main thread it interrupted."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)
    POLL_SECONDS = 0.1

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else "-"

    def install(self) -> None:
        for number in self.SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)

    def restore(self) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous if callable(previous) or isinstance(previous, int) else signal.SIG_DFL)

    def wait(self) -> None:
        while self.received is None:
            time.sleep(self.POLL_SECONDS)

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = number


def _with_port(address: str, port: int) -> str:
    return f"{address.rpartition(':')[0]}:{port}"


# ---- logging ---------------------------------------------------------------------------------------

# 15-19 digits (an 18-character citizen ID may end in X, card numbers run 16-19): the last line of defence
# behind masking at the source. Shorter runs (UUID groups, amounts, ports) are left alone.
_IDENTIFIER_LIKE = re.compile(r"(?<![0-9A-Za-z])[0-9]{14,18}[0-9Xx](?![0-9A-Za-z])")


def scrub(text: str) -> str:
    """Mask anything that looks like a citizen ID or card number to its last 4 characters."""
    return _IDENTIFIER_LIKE.sub(lambda match: "*" * (len(match[0]) - 4) + match[0][-4:], text)


class MaskingFormatter(logging.Formatter):
    """One line per record (tracebacks folded), identifiers masked, including inside tracebacks."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record)).replace("\n", " | ")


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Log to stderr as ``time level logger message`` lines through the masking formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
