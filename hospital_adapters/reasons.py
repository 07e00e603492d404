"""The refusal reasons the adapters add to the engine's, with the message a cashier reads.

Owns: the UPPER_SNAKE reasons that only adapters give (a code the mapping table cannot resolve, a
message that cannot be read), and ``message_zh`` for any reason, adapter's or engine's. The engine's
reasons and their texts stay in ``settlement.errors``; this module never redefines one of them.
"""

from __future__ import annotations

from settlement.errors import error_classes

ADAPTER_REASONS: dict[str, str] = {
    "UNIT_MISMATCH": "计价单位与对照表不符，请核对单位或对照表",
    "AMBIGUOUS_ITEM_CODE": "院内项目编码在对照表中有多条对照，请修正对照表或传入单位",
    "CREDIT_WITHOUT_CHARGE": "冲减明细无对应的收费明细；已结算费用请走撤销流程",
    "MALFORMED_MESSAGE": "报文格式有误，无法解析",
    "UNSUPPORTED_MESSAGE_TYPE": "不支持的消息类型，请发送 DFT^P03",
    "UNSUPPORTED_VERSION": "不支持的 HL7 版本，请使用 2.5",
    "UNSUPPORTED_PROCESSING_ID": "处理标识（MSH-11）与本接口不符（生产/测试环境不一致）",
    "MESSAGE_TOO_LARGE": "报文超过长度上限，请分单发送",
    "INVALID_CLAIM": "FHIR Claim 资源有误",
    "UNSUPPORTED_MEDIA_TYPE": "请以 application/fhir+json 提交",
    "INVALID_CHARGE_FILE": "收费文件格式有误，未结算",
}

_ENGINE_MESSAGES_ZH = {cls.reason: cls.message_zh for cls in error_classes()}


def message_zh(reason: str) -> str:
    """The cashier's text for a reason; the engine's generic text when the reason is unknown."""
    return ADAPTER_REASONS.get(reason) or _ENGINE_MESSAGES_ZH.get(reason) or _ENGINE_MESSAGES_ZH["UNKNOWN"]


def all_reasons() -> dict[str, str]:
    """Every reason an adapter can report, with its Chinese text: the integration guide lists these."""
    return {**_ENGINE_MESSAGES_ZH, **ADAPTER_REASONS}
