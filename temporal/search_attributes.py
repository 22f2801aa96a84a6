"""The platform's custom search attributes, registered on the server at start-up."""

from __future__ import annotations

from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

DEAL_STAGE = SearchAttributeKey.for_keyword("DealStage")
COMPANY_ID = SearchAttributeKey.for_keyword("CompanyId")
SECURITY_ID = SearchAttributeKey.for_keyword("SecurityId")
DEAL_VALUE = SearchAttributeKey.for_float("DealValue")
BUYER_ID = SearchAttributeKey.for_keyword("BuyerId")
SELLER_ID = SearchAttributeKey.for_keyword("SellerId")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
SIDE = SearchAttributeKey.for_keyword("Side")
KYC_STATUS = SearchAttributeKey.for_keyword("KycStatus")

ALL_KEYS = (
    DEAL_STAGE,
    COMPANY_ID,
    SECURITY_ID,
    DEAL_VALUE,
    BUYER_ID,
    SELLER_ID,
    ORDER_STATUS,
    SIDE,
    KYC_STATUS,
)

_CLI_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
}


def dev_server_args() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    args: list[str] = []
    for key in ALL_KEYS:
        args += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type]}"]
    return args
