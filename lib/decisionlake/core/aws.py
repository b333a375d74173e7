"""AWS clients and secrets, in one place: the configured endpoint (moto locally) and region.

Secrets come from Secrets Manager only, never from config or the environment: the warehouse's
connection settings and the pseudonymisation key.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from decisionlake.config import AppConfig


def aws_client(cfg: AppConfig, service: str) -> Any:
    """A boto3 client; the configured endpoint (moto locally) when there is one."""
    return _client(service, cfg.services.aws_endpoint, cfg.storage.region)


def _client(service: str, endpoint: str, region: str) -> Any:
    import boto3

    kwargs: dict[str, Any] = {"region_name": region}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return boto3.client(service, **kwargs)


def warehouse_credentials(cfg: AppConfig) -> dict[str, Any]:
    """The warehouse's connection settings (``services.warehouse_secret_id``)."""
    secret = aws_client(cfg, "secretsmanager").get_secret_value(
        SecretId=cfg.services.warehouse_secret_id
    )
    return json.loads(secret["SecretString"])


def pseudonymisation_key(cfg: AppConfig) -> bytes:
    """The HMAC key of the pseudonymised tokens (``{"key_b64": ...}``), fetched once per
    process: the same key gives the same token in every run, so joins across tables hold."""
    return _fetch_key(cfg.services.pseudonymisation_secret_id, cfg.services.aws_endpoint,
                      cfg.storage.region)  # fmt: skip


@lru_cache(maxsize=4)
def _fetch_key(secret_id: str, endpoint: str, region: str) -> bytes:
    client = _client("secretsmanager", endpoint, region)
    try:
        value = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        raise RuntimeError(
            f"pseudonymisation key {secret_id!r} not found in Secrets Manager "
            "(locally: `decisionlake services up` provisions it)"
        ) from None
    key = base64.b64decode(json.loads(value)["key_b64"])
    if len(key) < 32:
        raise RuntimeError(f"pseudonymisation key {secret_id!r} is shorter than 32 bytes")
    return key


def publish_alert(cfg: AppConfig, subject: str, payload: dict[str, Any]) -> str | None:
    """Publish to the alert topic (``services.alert_topic_arn``); its message id, or None
    when no topic is configured."""
    if not cfg.services.alert_topic_arn:
        return None
    return aws_client(cfg, "sns").publish(
        TopicArn=cfg.services.alert_topic_arn, Subject=subject, Message=json.dumps(payload)
    )["MessageId"]
