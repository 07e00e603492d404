"""What the doctor and the patient read: the split table, the receipt, the card line. Pure formatting.

Owns the bilingual labels (Chinese first, as on the statement the citizen gets, then English) and the
column alignment, which counts a Chinese character as two columns like every terminal does. Must never
show more of a card number or citizen ID than its last 4 characters: it only ever receives masked ones.
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from settlement.api.gen.clinic.settlement.v1 import charge_pb2, settlement_pb2
from settlement.domain.money import format_yuan
from settlement.service.clock import CHINA_STANDARD_TIME

LABEL_COLUMNS = 30
AMOUNT_COLUMNS = 12
RULE = "─" * (LABEL_COLUMNS + AMOUNT_COLUMNS)

_CLASS_LABELS = {
    charge_pb2.ITEM_CLASS_A: "甲类 A",
    charge_pb2.ITEM_CLASS_B: "乙类 B",
    charge_pb2.ITEM_CLASS_C: "丙类 C",
}


def display_width(text: str) -> int:
    """Terminal columns: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def pad(text: str, columns: int) -> str:
    return text + " " * max(0, columns - display_width(text))


def _row(label: str, amount_fen: int) -> str:
    return pad(label, LABEL_COLUMNS) + format_yuan(amount_fen).rjust(AMOUNT_COLUMNS)


def split_table(split: settlement_pb2.Split) -> list[str]:
    """Total, fund, account, cash and balance after, in yuan; the segmented accounts when they paid."""
    rows = [
        pad("项目 item", LABEL_COLUMNS) + "金额 yuan".rjust(AMOUNT_COLUMNS - 1),
        RULE,
        _row("医疗费总额 total", split.total_fen),
        _row("统筹基金支付 fund paid", split.fund_paid_fen),
        _row("个人账户支付 account paid", split.account_paid_fen),
    ]
    if split.model == settlement_pb2.SPLIT_MODEL_SEGMENTED:
        rows += [
            _row("  当年账户 current year", split.current_year_paid_fen),
            _row("  历年账户 historical", split.historical_paid_fen),
        ]
    rows += [
        _row("个人现金支付 cash", split.cash_fen),
        RULE,
        _row("账户余额 balance after", split.balance_after_fen),
    ]
    return rows


def card_line(card_masked: str, holder_name: str, citizen_id_masked: str) -> str:
    return f"卡号 card {card_masked}  持卡人 holder {mask_name(holder_name)}  身份证 ID {citizen_id_masked}"


def mask_name(name: str) -> str:
    """``张三`` → ``张*``: the doctor sees whom to ask, a passer-by learns nothing."""
    return name[:1] + "*" * (len(name) - 1) if name else ""


def quote_lines(quote_split: settlement_pb2.Split, expires: dt.datetime) -> list[str]:
    shown = expires.astimezone(CHINA_STANDARD_TIME).strftime("%H:%M:%S")
    return ["预结算 quote", *split_table(quote_split), f"有效至 valid until {shown} CST"]


def receipt(settlement: settlement_pb2.Settlement) -> list[str]:
    """The receipt of a settled visit, with its lines and whether the card was present."""
    settled_at = settlement.settle_time.ToDatetime(tzinfo=dt.UTC).astimezone(CHINA_STANDARD_TIME)
    rows = [
        "════ 门诊结算单 outpatient settlement receipt ════",
        f"医院 hospital          {settlement.hospital_id}",
        f"终端 terminal          {settlement.terminal_id}   操作员 operator {settlement.operator_id}",
        f"结算号 settlement id   {settlement.settlement_id}",
        f"请求号 request id      {settlement.request_id}",
        f"结算时间 settled at    {settled_at:%Y-%m-%d %H:%M:%S} CST",
        f"就诊日期 visit date    {settlement.visit_date}",
        f"参保人 person          {settlement.person_number}",
        f"卡号 card              {settlement.card_number_masked or '-'}",
        f"刷卡确认 card present  {'是 yes' if settlement.card_present else '否 no'}",
        "明细 lines",
    ]
    for line in settlement.split.lines:
        rows.append(
            f"  {line.hospital_line_id:<6} {line.item_code:<28} {line.quantity:>6} × {line.unit_price_yuan:>10}"
            f" = {format_yuan(line.amount_fen):>10}  {_CLASS_LABELS.get(line.item_class, '?')}"
        )
    rows += split_table(settlement.split)
    rows.append("════════════════════════════════════════════════")
    return rows
