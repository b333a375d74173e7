"""Text cleaning as Column helpers: HTML to text, quoted replies and signatures removed."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

_ENTITIES = (
    ("&nbsp;", " "),
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#39;", "'"),
    ("&#x27;", "'"),
    ("&amp;", "&"),
)

# A reply's quoted history starts at one of these lines; everything from there is dropped.
_REPLY_HEADER = r"(?ms)^(On .{0,200}wrote:\s*$|-{2,}\s*Original Message\s*-{2,}|From: .+^Sent: ).*"
# Signatures: the "-- " delimiter, or a mobile footer.
_SIGNATURE = r"(?ms)(^-- ?$|^Sent from my \w+).*"


def html_to_text(html: Column) -> Column:
    """Strip markup: scripts and styles dropped, line breaks kept, common entities decoded."""
    text = F.regexp_replace(html, r"(?is)<(script|style)[^>]*>.*?</\1>", "")
    text = F.regexp_replace(text, r"(?i)<br\s*/?>|</p>|</div>|</li>|</tr>", "\n")
    text = F.regexp_replace(text, r"<[^>]+>", "")
    for entity, char in _ENTITIES:
        text = F.replace(text, F.lit(entity), F.lit(char))
    return F.regexp_replace(text, r"\n[ \t]+", "\n")


def strip_quoted_reply(text: Column) -> Column:
    """Drop the quoted history of a reply and any ``>``-quoted lines."""
    text = F.regexp_replace(text, _REPLY_HEADER, "")
    return F.regexp_replace(text, r"(?m)^>.*(\n|$)", "")


def strip_signature(text: Column) -> Column:
    """Drop the signature block."""
    return F.regexp_replace(text, _SIGNATURE, "")


def normalize_whitespace(text: Column) -> Column:
    text = F.regexp_replace(text, r"\r\n?", "\n")
    text = F.regexp_replace(text, r"[ \t\u00a0]+", " ")
    text = F.regexp_replace(text, r"\n{3,}", "\n\n")
    return F.regexp_replace(text, r"^\s+|\s+$", "")  # trim() keeps newlines


def analysed_text(body: Column, body_format: Column) -> Column:
    """The part of a note worth analysing: plain text without replies or signature."""
    plain = F.when(body_format == "html", html_to_text(body)).otherwise(body)
    return normalize_whitespace(strip_signature(strip_quoted_reply(normalize_whitespace(plain))))
