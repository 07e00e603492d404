"""Health says SERVING only while the engine is ready, and NOT_SERVING from the first moment of a drain;
a drain lets the call in flight finish. Reflection is there only when configured."""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from server_fakes import OPERATOR, PkiFiles, Served, ServeFactory, mtls_channel, settle_request, wait_until

from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc
from settlement.server.runtime import SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
CALL = {"timeout": 5.0, "metadata": [("operator-id", OPERATOR)]}


def health_of(channel: grpc.Channel, service: str = "") -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5.0)
    return int(reply.status)


def test_health_is_not_serving_until_ready_then_serving(serve: ServeFactory, test_pki: PkiFiles) -> None:
    served = serve(ready=False)
    with mtls_channel(served.port, test_pki.ca_pem, test_pki.terminal) as channel:
        assert health_of(channel) == NOT_SERVING
        assert health_of(channel, SERVICE_NAME) == NOT_SERVING
        served.ready.value = True
        wait_until(lambda: health_of(channel) == SERVING)
        assert health_of(channel, SERVICE_NAME) == SERVING
        served.ready.value = False  # the database went away
        wait_until(lambda: health_of(channel) == NOT_SERVING)


def test_a_readiness_check_that_raises_counts_as_not_ready(serve: ServeFactory, test_pki: PkiFiles) -> None:
    served = serve()
    with mtls_channel(served.port, test_pki.ca_pem, test_pki.terminal) as channel:
        wait_until(lambda: health_of(channel) == SERVING)
        served.ready.error = ConnectionError("database unreachable")
        wait_until(lambda: health_of(channel) == NOT_SERVING)


def test_draining_says_not_serving_lets_the_call_in_flight_finish_then_refuses(
    serve: ServeFactory, test_pki: PkiFiles
) -> None:
    served = serve(drain_notice_seconds=0.5, drain_grace_seconds=5.0)
    with mtls_channel(served.port, test_pki.ca_pem, test_pki.terminal) as channel:
        stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)
        wait_until(lambda: health_of(channel) == SERVING)
        replies: list[object] = []
        in_flight = threading.Thread(target=lambda: replies.append(stub.Settle(settle_request("P-SLOW"), **CALL)))
        in_flight.start()
        wait_until(lambda: len(served.fake.callers) == 1)
        drain = threading.Thread(target=served.running.drain)
        drain.start()
        # During the notice period the server still answers, and says it is going away.
        wait_until(lambda: health_of(channel) == NOT_SERVING)
        assert health_of(channel, SERVICE_NAME) == NOT_SERVING
        in_flight.join()
        drain.join()
        assert len(replies) == 1  # the slow settle completed during the drain
        with pytest.raises(grpc.RpcError) as after:
            stub.Settle(settle_request(), **CALL)  # type: ignore[arg-type]
        assert after.value.code() is grpc.StatusCode.UNAVAILABLE


def test_reflection_lists_the_service_and_health_when_on(serve: ServeFactory, test_pki: PkiFiles) -> None:
    served = serve(reflection=True)
    with mtls_channel(served.port, test_pki.ca_pem, test_pki.terminal) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert SERVICE_NAME in services
    assert "grpc.health.v1.Health" in services


def test_reflection_is_absent_when_off(served: Served, test_pki: PkiFiles) -> None:
    with mtls_channel(served.port, test_pki.ca_pem, test_pki.terminal) as channel, pytest.raises(grpc.RpcError) as off:
        ProtoReflectionDescriptorDatabase(channel).get_services()
    assert off.value.code() is grpc.StatusCode.UNIMPLEMENTED
