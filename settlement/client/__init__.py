"""Clients of the settlement engine's gRPC API.

Public surface: ``GrpcEnginePort`` (the hospital adapters' ``EnginePort`` on the real engine), the
channel it needs (``open_channel`` with ``ClientTls`` for mTLS, or plaintext with a ``DevIdentity`` in
dev mode) and ``refusal_of`` for other callers that want the engine's reason from a failed call.
"""

from settlement.client.engine_port import ClientTls, DevIdentity, GrpcEnginePort, open_channel, refusal_of

__all__ = ["ClientTls", "DevIdentity", "GrpcEnginePort", "open_channel", "refusal_of"]
