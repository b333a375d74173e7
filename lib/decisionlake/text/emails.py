"""Parsing MIME email files (.eml) on Arrow batches with the standard library's parser.

MIME structure (multipart, transfer encodings, charsets) is beyond built-in SQL functions, so
this is a pandas UDF: one Python call per batch of documents, not per row.
"""

from __future__ import annotations

import email
import email.policy
from email.utils import getaddresses, parsedate_to_datetime

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql import types as T

EML_SCHEMA = T.StructType(
    [
        T.StructField("note_id", T.StringType()),
        T.StructField("from_email", T.StringType()),
        T.StructField("to_email", T.StringType()),
        T.StructField("to_name", T.StringType()),
        T.StructField("subject", T.StringType()),
        T.StructField("sent_at", T.StringType()),
        T.StructField("body", T.StringType()),
        T.StructField("body_format", T.StringType()),
        T.StructField("charset", T.StringType()),
        T.StructField("error", T.StringType()),
    ]
)


def parse_eml_bytes(raw: bytes) -> dict[str, str | None]:
    """The fields of one message; ``error`` says why a message could not be used."""
    try:
        return _parse(raw)
    except Exception as exc:  # a malformed header must not fail the whole batch
        return {"error": f"UNPARSEABLE_EMAIL: {type(exc).__name__}"}


def _parse(raw: bytes) -> dict[str, str | None]:
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:
        return {"error": f"UNPARSEABLE_EMAIL: {type(exc).__name__}"}
    if not msg.keys():
        return {"error": "UNPARSEABLE_EMAIL: no headers"}
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return {"error": "EMAIL_WITHOUT_TEXT_BODY"}
    try:
        body = part.get_content()
    except (LookupError, UnicodeError) as exc:
        return {"error": f"UNDECODABLE_EMAIL_BODY: {type(exc).__name__}"}
    sent = msg.get("Date")
    try:
        sent_at = parsedate_to_datetime(str(sent)).isoformat() if sent else None
    except (TypeError, ValueError):
        sent_at = None
    sender = getaddresses([str(msg.get("From", ""))])
    recipient = getaddresses([str(msg.get("To", ""))])
    message_id = str(msg.get("X-Note-Id") or msg.get("Message-ID") or "").strip("<> ") or None
    return {
        "note_id": message_id,
        "from_email": sender[0][1] if sender and sender[0][1] else None,
        "to_email": recipient[0][1] if recipient and recipient[0][1] else None,
        "to_name": recipient[0][0] if recipient and recipient[0][0] else None,
        "subject": str(msg.get("Subject", "")) or None,
        "sent_at": sent_at,
        "body": body,
        "body_format": "html" if part.get_content_subtype() == "html" else "text",
        "charset": part.get_content_charset() or "us-ascii",
        "error": None,
    }


@F.pandas_udf(EML_SCHEMA)
def parse_eml(content: pd.Series) -> pd.DataFrame:
    """Vectorised entry point: a batch of .eml bytes -> a batch of parsed fields."""
    rows = [
        parse_eml_bytes(bytes(raw)) if raw is not None else {"error": "EMPTY_FILE"}
        for raw in content
    ]
    return pd.DataFrame(rows, columns=EML_SCHEMA.fieldNames(), dtype=object)
