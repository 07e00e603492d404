"""Clinic-side settlement engine (诊间结算).

Packages: ``settlement.domain`` (pure money rules, standard library only), ``settlement.storage``
(SQLAlchemy adapters), ``settlement.service`` (one handler per command), ``settlement.api`` (gRPC).
This module stays import-light on purpose: importing the domain must not pull in any adapter.
"""

__version__ = "0.1.0"
