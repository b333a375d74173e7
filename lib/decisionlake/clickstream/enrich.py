"""Canonical events -> silver.events columns: URL parts, referrer class, user agent, IP.

Built-in functions (regular expressions, ``try_parse_url``) for everything but the user agent,
which ``ua-parser`` reads once per distinct agent (``clickstream.user_agents``).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from decisionlake.clickstream.user_agents import with_user_agent_parts
from decisionlake.config import ReferrerRulesConfig
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


def referrer_class(
    referrer_host: Column, page_host: Column, utm_medium: Column, rules: ReferrerRulesConfig
) -> Column:
    """direct / internal / search / social / email / other (UTM medium email wins)."""
    return (
        F.when(F.lower(utm_medium) == "email", "email")
        .when(referrer_host.isNull() | (referrer_host == ""), "direct")
        .when((referrer_host == page_host) | referrer_host.rlike(rules.internal_hosts), "internal")
        .when(referrer_host.rlike(rules.search_hosts), "search")
        .when(referrer_host.rlike(rules.social_hosts), "social")
        .when(referrer_host.rlike(rules.email_hosts), "email")
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
    host = url_host(F.col("url"))
    ref_host = url_host(F.col("referrer"))
    utm_medium = F.coalesce(url_query_param(F.col("url"), "utm_medium"), F.col("utm_medium_hint"))
    kept = [
        c
        for c in canonical.columns
        if not c.endswith("_hint") and c not in ("ip", "url", "referrer", "properties")
    ]
    return (
        canonical.transform(with_user_agent_parts, crawler_pattern=crawler_pattern)
        .select(
            *kept,
            without_query(F.col("url")).alias("url"),
            without_query(F.col("referrer")).alias("referrer"),
            allowed_properties(F.col("properties"), key=pseudonym_key).alias("properties"),
            host.alias("url_host"),
            F.try_parse_url(F.col("url"), F.lit("PATH")).alias("url_path"),
            F.coalesce(url_query_param(F.col("url"), "utm_source"), F.col("utm_source_hint")).alias(
                "utm_source"
            ),
            utm_medium.alias("utm_medium"),
            F.coalesce(
                url_query_param(F.col("url"), "utm_campaign"), F.col("utm_campaign_hint")
            ).alias("utm_campaign"),
            ref_host.alias("referrer_host"),
            referrer_class(ref_host, host, utm_medium, referrer_rules).alias("referrer_class"),
            F.coalesce(F.col("device_class"), F.col("device_class_hint")).alias("device_class"),
            F.coalesce(F.col("browser"), F.col("browser_hint")).alias("browser"),
            F.coalesce(F.col("os"), F.col("os_hint")).alias("os"),
            truncate_ip(F.col("ip")).alias("ip_truncated"),
        )
        .select(*SILVER_EVENT_COLUMNS)
    )
