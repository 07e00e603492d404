"""The engine as a network service: gRPC over mTLS, with health, reflection, metrics and draining.

Owns: the infrastructure a servicer plugs into — configuration (``config``), the local CA (``pki``), who
is calling (``identity``), refusals on the wire (``status``), observability (``metrics``) and the process
(``runtime``). Must never hold business rules: the servicer translates proto to service commands and the
service decides. Import the submodules directly; this package imports nothing so ``settlement --help``
stays fast.
"""
