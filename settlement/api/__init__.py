"""The gRPC edge of the engine: the API v1 contract and its generated code.

Owns: ``settlement.api.gen`` (code generated from ``proto/`` by ``scripts/gen_proto.sh``; never edited by
hand, a test fails when it is stale). Must never be imported by ``settlement.domain``: the domain stays
standard-library only, and protobuf/grpc types are translated at this edge.
"""
