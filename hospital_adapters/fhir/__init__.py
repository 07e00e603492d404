"""FHIR R4B over HTTP: a Claim in, a ClaimResponse (or an OperationOutcome) out.

Modules: ``claims`` (Claim to visit, result to ClaimResponse / OperationOutcome; no sockets) and
``adapter`` (the HTTP endpoint).
"""
