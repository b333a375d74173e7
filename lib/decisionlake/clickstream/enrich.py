"""Canonical events -> silver.events columns: URL parts, referrer class, user agent, IP.

Built-in functions (regular expressions, ``try_parse_url``) for everything but the user agent,
which ``ua-parser`` reads once per distinct agent (``clickstream.user_agents``).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from decisionlake.clickstream.user_agents import with_user_agent_parts
from decisionlake.config import ReferrerRulesConfig
from decisionlake.core.frames import with_parts_of
from decisionlake.core.privacy import hmac_sha256

SILVER_EVENT_COLUMNS = (
    "source",
    "event_id",
    "event_ts",
    "event_date",
    "visitor_id",
    "user_id",
    "event_type",
    "url",
    "url_host",
    "url_path",
    "page_title",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "referrer",
    "referrer_host",
    "referrer_class",
    "user_agent",
    "device_class",
    "browser",
    "os",
    "ip_truncated",
    "fund_ticker",
    "asset_class",
    "topic",
    "source_session_id",
    "engagement_msec",
    "properties",
    "ingest_date",
)


# Properties that carry no personal data; anything else a tracker sends stays in bronze.
ALLOWED_PROPERTIES = (
    "form_id",
    "document_id",
    "video_id",
    "target",
    "email_sha256",
    "search_query",
)
UTM_PARAMETERS = ("utm_source", "utm_medium", "utm_campaign")
_EMAIL_OR_PHONE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\+?\d[\d ().-]{7,}\d"


def without_query(url: Column) -> Column:
    """A URL without query string and fragment (tokens and emails travel there)."""
    return F.regexp_replace(url, r"[?#].*$", "")


def allowed_properties(properties: Column, *, key: bytes) -> Column:
    """Known, non-identifying properties only; free text has emails and phones masked, and
    the form's e-mail hash becomes ``email_token`` (keyed HMAC, as in silver.advisors)."""
    kept = F.map_filter(properties, lambda k, _v: k.isin(*ALLOWED_PROPERTIES))
    masked = F.transform_values(
        kept,
        lambda k, v: F.when(k == "email_sha256", hmac_sha256(F.lower(F.trim(v)), key)).otherwise(
            F.regexp_replace(v, _EMAIL_OR_PHONE, "<PII>")
        ),
    )
    return F.transform_keys(
        masked, lambda k, _v: F.when(k == "email_sha256", F.lit("email_token")).otherwise(k)
    )


def url_host(url: Column) -> Column:
    return F.lower(F.try_parse_url(url, F.lit("HOST")))


def url_query_param(url: Column, key: str) -> Column:
    return F.try_parse_url(url, F.lit("QUERY"), F.lit(key))


def referrer_kind(referrer_host: Column, rules: ReferrerRulesConfig) -> Column:
    """What the referrer's host alone says: internal / search / social / email, else NULL."""
    return (
        F.when(referrer_host.rlike(rules.internal_hosts), "internal")
        .when(referrer_host.rlike(rules.search_hosts), "search")
        .when(referrer_host.rlike(rules.social_hosts), "social")
        .when(referrer_host.rlike(rules.email_hosts), "email")
    )


def referrer_class(
    referrer_host: Column, kind: Column, page_host: Column, utm_medium: Column
) -> Column:
    """direct / internal / search / social / email / other (UTM medium email wins);
    ``kind`` is :func:`referrer_kind` of the referrer's host."""
    return (
        F.when(F.lower(utm_medium) == "email", "email")
        .when(referrer_host.isNull() | (referrer_host == ""), "direct")
        .when((referrer_host == page_host) | (kind == "internal"), "internal")
        .when(kind.isNotNull(), kind)
        .otherwise("other")
    )


def truncate_ip(ip: Column) -> Column:
    """IPv4 keeps /24 (last octet zeroed); IPv6 keeps the first three groups (/48)."""
    return (
        F.when(ip.rlike(r"^\d{1,3}(\.\d{1,3}){3}$"), F.regexp_replace(ip, r"\.\d{1,3}$", ".0"))
        .when(
            ip.contains(":"),
            F.concat(F.array_join(F.slice(F.split(ip, ":"), 1, 3), ":"), F.lit("::")),
        )
        .otherwise(None)
    )


def enrich_events(
    canonical: DataFrame,
    *,
    referrer_rules: ReferrerRulesConfig,
    crawler_pattern: str,
    pseudonym_key: bytes,
) -> DataFrame:
    """Derive the silver.events columns from canonical events."""
    url, referrer = F.col("url"), F.col("referrer")
    kept = [
        c
        for c in canonical.columns
        if not c.endswith("_hint") and c not in ("ip", "url", "referrer", "properties")
    ]
    utm_medium = F.coalesce(F.col("_utm_medium"), F.col("utm_medium_hint"))
    return (
        canonical.transform(with_user_agent_parts, crawler_pattern=crawler_pattern)
        .transform(
            with_parts_of,
            "url",
            {
                "_url": without_query(url),
                "url_host": url_host(url),
                "url_path": F.try_parse_url(url, F.lit("PATH")),
                **{f"_{k}": url_query_param(url, k) for k in UTM_PARAMETERS},
            },
        )
        .transform(
            with_parts_of,
            "referrer",
            {
                "_referrer": without_query(referrer),
                "referrer_host": url_host(referrer),
                "_referrer_kind": referrer_kind(url_host(referrer), referrer_rules),
            },
        )
        .select(
            *kept,
            F.col("_url").alias("url"),
            F.col("_referrer").alias("referrer"),
            allowed_properties(F.col("properties"), key=pseudonym_key).alias("properties"),
            "url_host",
            "url_path",
            F.coalesce(F.col("_utm_source"), F.col("utm_source_hint")).alias("utm_source"),
            utm_medium.alias("utm_medium"),
            F.coalesce(F.col("_utm_campaign"), F.col("utm_campaign_hint")).alias("utm_campaign"),
            "referrer_host",
            referrer_class(
                F.col("referrer_host"), F.col("_referrer_kind"), F.col("url_host"), utm_medium
            ).alias("referrer_class"),
            F.coalesce(F.col("device_class"), F.col("device_class_hint")).alias("device_class"),
            F.coalesce(F.col("browser"), F.col("browser_hint")).alias("browser"),
            F.coalesce(F.col("os"), F.col("os_hint")).alias("os"),
            truncate_ip(F.col("ip")).alias("ip_truncated"),
        )
        .select(*SILVER_EVENT_COLUMNS)
    )
