"""The schema, as SQLAlchemy Core tables (the migrations in ``migrations/`` create exactly these).

Owns: table and constraint definitions. CHECK constraints are the second guard behind the domain's own
checks: balances never below zero, posting amounts strictly positive, a settlement cancelled at most once.
Settlements, lines, postings and audit rows are append-only: nothing here is ever UPDATEd or DELETEd;
a cancellation is a new, reversing settlement row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

Id = String(64)
Fen = BigInteger

hospitals = Table(
    "hospitals",
    metadata,
    Column("hospital_id", Id, primary_key=True),
    Column("name", Text, nullable=False),
    Column("level", Integer, nullable=False),
    Column("region", String(16), nullable=False),
    Column("card_proof_required", Boolean, nullable=False, default=False),
    CheckConstraint("level BETWEEN 1 AND 3", name="level_known"),
)

terminals = Table(
    "terminals",
    metadata,
    Column("terminal_id", Id, primary_key=True),
    Column("hospital_id", Id, ForeignKey("hospitals.hospital_id"), nullable=False),
    Column("name", Text, nullable=False),
    # desk: a doctor's-desk terminal with a card reader; his: a hospital system's adapter. A hospital may
    # require card proofs from desk terminals only.
    Column("channel", String(8), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    CheckConstraint("channel IN ('desk', 'his')", name="channel_known"),
)

persons = Table(
    "persons",
    metadata,
    Column("person_number", Id, primary_key=True),  # 个人编号 (psn_no): the insurer's id, not the citizen ID
    Column("name", Text, nullable=False),
    Column("insured_type", String(16), nullable=False),
    Column("region", String(16), nullable=False),
    Column("citizen_id_hash", String(64), nullable=False, unique=True),  # keyed HMAC-SHA256, never clear
    Column("citizen_id_last4", String(4), nullable=False),
)

cards = Table(
    "cards",
    metadata,
    Column("card_number", Id, primary_key=True),
    Column("person_number", Id, ForeignKey("persons.person_number"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("key_reference", String(64), nullable=False, default="default"),
    Column("last_counter", BigInteger, nullable=False, default=0),
    CheckConstraint("status IN ('active', 'lost', 'blocked')", name="status_known"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("person_number", Id, ForeignKey("persons.person_number"), primary_key=True),
    Column("current_year_fen", Fen, nullable=False),
    Column("historical_fen", Fen, nullable=False),
    CheckConstraint("current_year_fen >= 0", name="current_year_not_negative"),
    CheckConstraint("historical_fen >= 0", name="historical_not_negative"),
)

accumulators = Table(
    "accumulators",
    metadata,
    Column("person_number", Id, ForeignKey("persons.person_number"), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("deductible_fen", Fen, nullable=False),
    Column("fund_fen", Fen, nullable=False),
    Column("self_segment_fen", Fen, nullable=False),
    CheckConstraint("deductible_fen >= 0 AND fund_fen >= 0 AND self_segment_fen >= 0", name="not_negative"),
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("name", String(160), primary_key=True),
    Column("balance_fen", Fen, nullable=False),
    Column("may_go_negative", Boolean, nullable=False),
    CheckConstraint("may_go_negative OR balance_fen >= 0", name="internal_not_negative"),
)

settlements = Table(
    "settlements",
    metadata,
    Column("settlement_id", Id, primary_key=True),
    Column("hospital_id", Id, ForeignKey("hospitals.hospital_id"), nullable=False),
    Column("terminal_id", Id, nullable=False),
    Column("operator_id", Id, nullable=False),
    Column("request_id", Id, nullable=False),
    Column("person_number", Id, ForeignKey("persons.person_number"), nullable=False),
    Column("card_number_last4", String(4), nullable=False),
    Column("card_present", Boolean, nullable=False),
    Column("kind", String(16), nullable=False),  # settlement / cancellation
    Column("reverses_id", Id, ForeignKey("settlements.settlement_id"), nullable=True, unique=True),
    Column("region", String(16), nullable=False),
    Column("insured_type", String(16), nullable=False),
    Column("visit_type", String(16), nullable=False),
    Column("clearing_type", String(16), nullable=False),
    Column("visit_date", Date, nullable=False),
    Column("use_account", Boolean, nullable=False),
    Column("model", String(16), nullable=False),  # national / segmented
    Column("policy_version", String(64), nullable=False),  # region and first day of the version applied
    Column("replaces_id", Id, nullable=True),  # a refund's new settlement names the one it replaces
    Column("business_date", Date, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),  # µs since the epoch, UTC: exact on every store
    Column("total_fen", Fen, nullable=False),  # medfee_sumamt
    Column("fully_self_paid_fen", Fen, nullable=False),  # fulamt_ownpay_amt
    Column("over_ceiling_fen", Fen, nullable=False),  # overlmt_selfpay
    Column("pre_self_paid_fen", Fen, nullable=False),  # preselfpay_amt
    Column("in_scope_fen", Fen, nullable=False),  # inscp_scp_amt
    Column("deductible_paid_fen", Fen, nullable=False),  # act_pay_dedc
    Column("fund_paid_fen", Fen, nullable=False),  # hifp_pay
    Column("personal_part_fen", Fen, nullable=False),  # psn_part_amt
    Column("account_paid_fen", Fen, nullable=False),  # acct_pay
    Column("current_year_paid_fen", Fen, nullable=False),
    Column("historical_paid_fen", Fen, nullable=False),
    Column("self_segment_fen", Fen, nullable=False),
    Column("cash_fen", Fen, nullable=False),  # psn_cash_pay
    Column("current_year_after_fen", Fen, nullable=False),
    Column("historical_after_fen", Fen, nullable=False),  # balc = current_year_after + historical_after
    # What the settlement did to the year's accumulators, so a cancel negates it without recomputing.
    Column("accumulator_year", Integer, nullable=False),
    Column("deductible_delta_fen", Fen, nullable=False),
    Column("fund_delta_fen", Fen, nullable=False),
    Column("self_segment_delta_fen", Fen, nullable=False),
    # request_id is not unique here (a refund writes a cancellation and a replacement under one request
    # id) and not indexed: the requests table is the idempotency record and what lookups by id read.
    CheckConstraint("kind IN ('settlement', 'cancellation')", name="kind_known"),
    CheckConstraint("(kind = 'cancellation') = (reverses_id IS NOT NULL)", name="cancellation_reverses"),
    Index("ix_settlements_person_date", "person_number", "business_date"),
    Index("ix_settlements_hospital_date", "hospital_id", "business_date"),
)

settlement_lines = Table(
    "settlement_lines",
    metadata,
    Column("settlement_id", Id, ForeignKey("settlements.settlement_id"), primary_key=True),
    Column("line_number", Integer, primary_key=True),
    Column("item_code", String(64), nullable=False),
    Column("item_class", String(1), nullable=False),  # A / B / C from the catalogue in force
    Column("self_pay_ratio", String(8), nullable=False),  # exact decimal text (N5,4)
    Column("line_id", String(64), nullable=False),  # the hospital's own id of the line
    Column("quantity", String(24), nullable=False),  # exact decimal text (N16,4); "" when only an amount
    Column("unit_price", String(24), nullable=False),  # exact decimal text in yuan (N16,6)
    Column("price_ceiling", String(24), nullable=False),  # exact decimal text in yuan; "" when none
    Column("amount_fen", Fen, nullable=False),
    Column("fully_self_paid_fen", Fen, nullable=False),
    Column("over_ceiling_fen", Fen, nullable=False),
    Column("pre_self_paid_fen", Fen, nullable=False),
    Column("in_scope_fen", Fen, nullable=False),
)

postings = Table(
    "postings",
    metadata,
    Column("settlement_id", Id, nullable=False),  # a settlement, or a funding / rollover / import run id
    Column("sequence", Integer, nullable=False),
    Column("source", String(160), nullable=False),
    Column("destination", String(160), nullable=False),
    Column("amount_fen", Fen, nullable=False),
    Column("business_date", Date, nullable=False),
    UniqueConstraint("settlement_id", "sequence", name="uq_postings_entry_sequence"),
    CheckConstraint("amount_fen > 0", name="amount_positive"),
    CheckConstraint("source <> destination", name="moves_somewhere"),
)

requests = Table(
    "requests",
    metadata,
    # The idempotency record, written in the same transaction as the effect (or the refusal).
    Column("hospital_id", Id, primary_key=True),
    Column("request_id", Id, primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("settlement_id", Id, nullable=True),
    Column("refusal", Text, nullable=True),  # JSON of the refusal, repeated on every retry
    Column("created_at_us", BigInteger, nullable=False),
    CheckConstraint("(settlement_id IS NULL) <> (refusal IS NULL)", name="one_outcome"),
    Index("ix_requests_created", "created_at_us"),  # the daily purge of records past their window
)

quotes = Table(
    "quotes",
    metadata,
    # A quote's unpredictable number, which a card-present settle must spend exactly once.
    Column("quote_id", Id, primary_key=True),
    Column("hospital_id", Id, ForeignKey("hospitals.hospital_id"), nullable=False),
    Column("terminal_id", Id, nullable=False),
    Column("person_number", Id, nullable=False),
    Column("total_fen", Fen, nullable=False),
    Column("unpredictable_number", String(32), nullable=False),  # hex
    Column("issued_at_us", BigInteger, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
    Column("used_by_settlement_id", Id, nullable=True, unique=True),
    Index("ix_quotes_expires", "expires_at_us"),
)

runs = Table(
    "runs",
    metadata,
    # Batch jobs that must happen once: enrolment imports, annual funding, year-end rollover.
    Column("run_id", Id, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

closed_days = Table(
    "closed_days",
    metadata,
    Column("hospital_id", Id, ForeignKey("hospitals.hospital_id"), primary_key=True),
    Column("business_date", Date, primary_key=True),
    Column("closed_at_us", BigInteger, nullable=False),
    Column("totals", Text, nullable=False),  # JSON of the day's totals by insured type, clearing type, payer
    Column("audit_head", String(64), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("at_us", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),  # hospital/terminal/operator, or the CLI user
    Column("action", String(48), nullable=False),
    Column("subject", Text, nullable=False),  # settlement id, request id, run id; never a full citizen ID
    Column("outcome", String(64), nullable=False),  # ok, or the refusal reason
    Column("detail", Text, nullable=False),  # JSON
    Column("previous_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False, unique=True),
)
