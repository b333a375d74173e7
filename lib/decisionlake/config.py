"""Typed configuration: ``conf/base`` plus an environment overlay, validated at start-up.

Values may reference environment variables as ``${NAME}`` or ``${NAME:-default}``; the loader
also defines ``PROJECT_ROOT`` and ``DL_DATA_DIR`` (default ``<project>/data``). Unknown keys,
missing values and wrong types fail fast with the key path in the message.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml

from decisionlake.models.spec import ModelSpec, check_spec

ENVIRONMENTS = ("local", "local-s3", "test", "dev", "prod")
MODELS_DIR = "models"
# The tables the suite's jobs write (sources' bronze tables come from ``ingest``). Each lives
# at ``<lake>/<tier>/<name>`` unless ``tables`` says otherwise.
SUITE_TABLES = (
    "bronze.crm_notes",
    "bronze.crm_notes_quarantine",
    "silver.advisors",
    "silver.events",
    "silver.bot_events",
    "silver.sessions",
    "silver.page_views",
    "silver.identity_links",
    "silver.identity_map",
    "silver.crm_notes",
    "silver.note_features",
    "gold.advisor_360",
    "gold.text_topics",
    "gold.advisor_text_features",
    "gold.scores",
    "gold.call_list",
    "gold.campaign_uplift",
    "gold.score_outcomes",
    "ops.dq_results",
    "ops.dq_quarantine",
    "ops.model_monitoring",
    "ops.runs",
    "ops.file_quarantine",
    "ops.erasures",
)
QUARANTINABLE = (
    "not_null",
    "accepted_values",
    "range",
    "regex",
)  # conf/models holds model specs, not an environment
# Innermost references first, so a default may itself hold one: ${A:-${B}/x}.
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^${}]*))?\}")


class ConfigError(ValueError):
    """Raised when configuration is missing, unknown or of the wrong type."""


_MEMORY = re.compile(r"[1-9][0-9]*([kmgtp]b?)?", re.IGNORECASE)  # as Spark reads sizes
_CHECKS: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "positive": (lambda v: v > 0, "must be > 0"),
    "non_negative": (lambda v: v >= 0, "must be >= 0"),
    "fraction": (lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    "memory": (lambda v: bool(_MEMORY.fullmatch(str(v))), "must be a size like 512m, 4g or 4gb"),
    "date": (lambda v: _is_iso_date(v), "must be a date YYYY-MM-DD"),
}


def _is_iso_date(value: Any) -> bool:
    try:
        date.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def _checked(default: Any, check: str) -> Any:
    """A field whose value is range-checked at load time (``--set`` values too)."""
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class SparkConfig:
    """How the SparkSession is built."""

    # local: this process is the cluster. emr / cluster: launched by spark-submit onto EMR or
    # the project's local standalone cluster, which provide master, jars, Python and Delta.
    mode: Literal["local", "emr", "cluster"] = "local"
    master: str = "local[*]"
    shuffle_partitions: int = _checked(8, "positive")
    driver_memory: str = _checked("4g", "memory")
    ui_enabled: bool = False
    log_level: str = "WARN"
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageConfig:
    """Object-store settings; an endpoint means a local S3 stand-in (moto)."""

    s3_endpoint: str | None = None
    region: str = "us-east-1"
    dynamodb_log_store_table: str | None = None


@dataclass(frozen=True)
class PathsConfig:
    """Roots of the data zones; table URIs are templated on them."""

    landing: str
    lake: str
    artifacts: str


@dataclass(frozen=True)
class SourceConfig:
    """One raw source, ``ingest.<source>``: where its rules live, its tables and its limits.

    The entry is what enables a source: ``decisionlake run ingest --source <source>`` ingests
    it, and ``build_sessions`` reads its bronze table when the module maps events.
    """

    module: str = ""
    """The source module (default ``decisionlake.sources.<source>``): any importable module
    that defines ``SOURCE`` (see :mod:`decisionlake.sources`)."""
    table: str = ""
    """The bronze table (default ``bronze.<source>_events``); its quarantine is
    ``<table>_quarantine``."""
    max_line_bytes: int = _checked(32_768, "positive")
    max_late_days: int = _checked(3, "non_negative")
    max_future_skew_minutes: int = _checked(10, "non_negative")
    min_event_date: str = _checked("2015-01-01", "date")
    event_types: list[str] = field(default_factory=list)
    """Accepted event types, for a source whose rules check them (empty: the module's own)."""
    quarantined_files: Literal["fail", "warn"] = "warn"
    """``fail`` makes the ingest exit 1 after writing the good files when any file was
    quarantined (the pipeline stops and alerts); ``warn`` logs it and goes on."""


def source_module(name: str, source: SourceConfig) -> str:
    """The module that defines source ``name``."""
    return source.module or f"decisionlake.sources.{name}"


def source_tables(name: str, source: SourceConfig) -> tuple[str, str]:
    """The logical names of the source's bronze table and its quarantine (by convention)."""
    bronze = source.table or f"bronze.{name}_events"
    return bronze, f"{bronze}_quarantine"


@dataclass(frozen=True)
class BotRulesConfig:
    """When a visitor-day is treated as automated traffic."""

    crawler_pattern: str = (
        r"(?i)(bot|crawler|spider|slurp|crawl|headless|python-requests|curl/|wget|scrapy)"
    )
    max_events_per_minute: int = _checked(20, "positive")
    max_session_hours: float = _checked(4.0, "positive")
    min_page_views_without_pings: int = _checked(10, "positive")


@dataclass(frozen=True)
class ReferrerRulesConfig:
    """Host patterns (regular expressions) that classify referrers."""

    internal_hosts: str = r"(^|\.)northwind-funds\.example$"
    search_hosts: str = r"(^|\.)(google|bing|duckduckgo|yahoo|baidu|ecosia|yandex)\."
    social_hosts: str = r"(^|\.)(linkedin|facebook|twitter|x|t|instagram|youtube|reddit)\.(com|co)$"
    email_hosts: str = r"(^|\.)(mail|outlook|webmail)\.|(^|\.)mail\."


@dataclass(frozen=True)
class ClickstreamConfig:
    """Sessionization, engaged time, late data and bot filtering."""

    session_timeout_minutes: int = _checked(30, "positive")
    lookback_days: int = _checked(3, "non_negative")
    heartbeat_seconds: int = _checked(10, "positive")
    min_visit_seconds: int = _checked(10, "non_negative")
    bots: BotRulesConfig = field(default_factory=BotRulesConfig)
    referrers: ReferrerRulesConfig = field(default_factory=ReferrerRulesConfig)


@dataclass(frozen=True)
class IdentityConfig:
    """Identity stitching."""

    max_iterations: int = _checked(30, "positive")


@dataclass(frozen=True)
class Advisor360Config:
    """Windows and the category lists that become columns of gold.advisor_360."""

    windows_days: list[int] = field(default_factory=lambda: [7, 30, 90])
    topics: list[str] = field(
        default_factory=lambda: [
            "esg",
            "retirement",
            "fixed_income",
            "equity_growth",
            "alternatives",
            "tax_planning",
        ]
    )
    asset_classes: list[str] = field(
        default_factory=lambda: ["equity", "fixed_income", "multi_asset", "alternatives"]
    )
    referrer_classes: list[str] = field(
        default_factory=lambda: ["direct", "search", "social", "email", "internal", "other"]
    )
    funds: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SentimentConfig:
    """Sentiment with negation: the hand word lists, or VADER's maintained valence lexicon."""

    lexicon: Literal["hand", "vader"] = "hand"
    """``hand``: count the ``positive`` / ``negative`` words; ``vader``: sum the valences of
    the ``vaderSentiment`` package's lexicon (about 7,500 rated words), VADER's normalisation."""
    positive: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    negators: list[str] = field(default_factory=list)
    negation_window: int = _checked(3, "non_negative")


@dataclass(frozen=True)
class TextConfig:
    """CRM notes: ingest limits, the text pipeline and the finance lexicon."""

    max_document_bytes: int = _checked(200_000, "positive")
    link_retry_days: int = _checked(30, "positive")
    lda_topics: int = _checked(6, "positive")
    lda_max_iterations: int = _checked(30, "positive")
    vocab_size: int = _checked(3000, "positive")
    min_doc_freq: int = _checked(2, "positive")
    top_terms: int = _checked(10, "positive")
    seed: int = 7
    windows_days: list[int] = field(default_factory=lambda: [30, 90])
    domain_stop_words: list[str] = field(default_factory=list)
    lexicon: dict[str, list[str]] = field(default_factory=dict)
    sentiment: SentimentConfig = field(default_factory=SentimentConfig)
    languages: dict[str, list[str]] = field(default_factory=dict)
    refit: bool = False
    model_version: str = ""
    quarantined_files: Literal["fail", "warn"] = "warn"
    """As ``ingest.<source>.quarantined_files``, for the note files."""


@dataclass(frozen=True)
class Expectation:
    """One data-quality rule on a table."""

    rule: Literal[
        "not_null",
        "unique",
        "accepted_values",
        "range",
        "regex",
        "referential",
        "freshness",
        "volume",
    ]
    severity: Literal["warn", "quarantine", "fail"] = "fail"
    """warn: logged; quarantine: failing rows moved to ops.dq_quarantine; fail: the gate stops."""
    column: Any = None
    values: list[str] = field(default_factory=list)
    min: float | None = None
    max: float | None = None
    pattern: str = ""
    to_table: str = ""
    to_column: str = ""
    max_age_days: int = _checked(0, "non_negative")
    min_ratio: float = 0.0
    max_ratio: float = 0.0
    history: int = _checked(7, "positive")


@dataclass(frozen=True)
class QualityConfig:
    """Expectations per logical table and the column that selects a run's slice."""

    run_window_column: dict[str, str] = field(default_factory=dict)
    expectations: dict[str, list[Expectation]] = field(default_factory=dict)


@dataclass(frozen=True)
class GeneratorConfig:
    """Defaults of the synthetic data generator."""

    advisors: int = _checked(200, "positive")
    days: int = _checked(1, "positive")
    seed: int = 42
    anonymous_visitor_ratio: float = _checked(0.5, "fraction")
    bots: int = 5
    duplicate_rate: float = _checked(0.01, "fraction")
    late_rate: float = _checked(0.02, "fraction")
    malformed_rate: float = _checked(0.005, "fraction")
    notes_per_advisor_per_day: float = 0.3
    partitions: int = _checked(4, "positive")


@dataclass(frozen=True)
class ServicesConfig:
    """Where jobs find the warehouse and experiment tracking."""

    mlflow_tracking_uri: str = ""
    warehouse_secret_id: str = "decisionlake/warehouse"
    aws_endpoint: str = ""
    """Empty: real AWS. Locally the moto server (Secrets Manager, SNS, Glue)."""
    alert_topic_arn: str = ""
    """SNS topic for monitoring alerts; empty: alerts are only logged."""
    pseudonymisation_secret_id: str = "decisionlake/pseudonymisation"


@dataclass(frozen=True)
class MonitoringConfig:
    """Drift bins and the PSI at which a model is flagged for retraining."""

    bins: int = _checked(10, "positive")
    psi_alert: float = _checked(0.25, "positive")


@dataclass(frozen=True)
class ExportTableConfig:
    """A gold table published to a warehouse table."""

    source: str
    target: str
    keys: list[str]
    slice_column: str = "as_of_date"
    distkey: str = ""
    sortkey: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RedshiftConfig:
    """Where Redshift is, when the backend is one of the Redshift ones."""

    cluster_id: str = ""
    workgroup: str = ""
    database: str = "dev"
    iam_role_arn: str = ""
    secret_arn: str = ""


@dataclass(frozen=True)
class WarehouseConfig:
    """The score warehouse: backend, staging prefix, exported tables."""

    backend: Literal["postgres", "redshift_data_api", "redshift_connector"] = "postgres"
    staging: str = ""
    """Staging prefix for the Parquet the warehouse loads; default <artifacts>/warehouse-staging."""
    varchar_headroom: float = _checked(1.5, "positive")
    min_varchar: int = _checked(16, "positive")
    max_rows_per_file: int = _checked(2_000_000, "positive")
    """Staged Parquet: at most this many rows per file (~60 MB of score rows)."""
    max_files: int = _checked(64, "positive")
    """Staged Parquet: one file per partition up to this many (COPY loads files in parallel)."""
    stage_row_group_mb: float = _checked(4.0, "positive")
    """Staged Parquet: row groups of about this many MB. The PostgreSQL backend COPYs row
    groups in parallel, so a load of a few files still uses every connection."""
    load_connections: int = _checked(4, "positive")
    """PostgreSQL: staged files are COPYed in parallel over this many connections."""
    stale_staging_minutes: float = _checked(60.0, "non_negative")
    """A later successful load removes staged files of earlier loads of the same target once
    they are this old (younger ones may belong to a load still running)."""
    exports: dict[str, ExportTableConfig] = field(default_factory=dict)
    redshift: RedshiftConfig = field(default_factory=RedshiftConfig)


@dataclass(frozen=True)
class PublishConfig:
    """Curated copies of gold tables for downstream teams, registered in the Glue catalog."""

    location: str = ""
    """Default <lake>/../curated; s3://... in AWS."""
    glue_database: str = "decisionlake_curated"
    tables: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AccessRole:
    """The lake tiers one role may read and write."""

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AccessConfig:
    """Access policy as code: tiers (S3 prefixes of the lake bucket) and roles."""

    tiers: dict[str, str] = field(default_factory=dict)
    roles: dict[str, AccessRole] = field(default_factory=dict)


@dataclass(frozen=True)
class CallListConfig:
    """gold.call_list: whom to contact per run date, with a stable control group."""

    model: str = "advisor_propensity"
    """The model whose champion ranks the advisors."""
    segment_model: str = "advisor_segments"
    size: int = _checked(50, "positive")
    """Advisors targeted per run date (the control group among them is not called)."""
    holdout_fraction: float = _checked(0.1, "fraction")
    campaign_period_days: int = _checked(28, "positive")
    """The control group is reassigned once per period (keyed hash of advisor and period)."""
    limits: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per dimension (region, channel): at most this many advisors of a value."""
    min_per_arm: int = _checked(30, "positive")
    """Below this many matured outcomes per arm, uplift is reported as too few to conclude."""


@dataclass(frozen=True)
class AppConfig:
    """The whole validated configuration of one environment."""

    env: str
    paths: PathsConfig
    tables: dict[str, str] = field(default_factory=dict)
    """Locations that differ from ``<lake>/<tier>/<name>`` (URI templates on ``{lake}``)."""
    spark: SparkConfig = field(default_factory=SparkConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    ingest: dict[str, SourceConfig] = field(default_factory=dict)
    """The enabled raw sources by name."""
    clickstream: ClickstreamConfig = field(default_factory=ClickstreamConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    advisor_360: Advisor360Config = field(default_factory=Advisor360Config)
    text: TextConfig = field(default_factory=TextConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    services: ServicesConfig = field(default_factory=ServicesConfig)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    model_errors: dict[str, str] = field(default_factory=dict)
    """Specs under ``conf/models`` that failed validation, by name: only a job that uses one
    of them fails (exit 2); every other job runs."""
    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    access: AccessConfig = field(default_factory=AccessConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    call_list: CallListConfig = field(default_factory=CallListConfig)

    def table_names(self) -> list[str]:
        """Every logical table: the suite's own, each enabled source's bronze table and
        quarantine, and any other name ``tables`` gives a location."""
        names = set(SUITE_TABLES) | set(self.tables)
        for name, source in self.ingest.items():
            names.update(source_tables(name, source))
        return sorted(names)

    def table_uri(self, logical_name: str) -> str:
        """Resolve a logical table name (``bronze.clickstream``) to its URI: ``tables`` when
        it names one, else by convention ``<lake>/<tier>/<name>``."""
        template = self.tables.get(logical_name)
        if template is None:
            if logical_name not in self.table_names():
                known = ", ".join(self.table_names())
                raise ConfigError(f"tables.{logical_name}: unknown table (known: {known})")
            tier, _, name = logical_name.partition(".")
            template = f"{{lake}}/{tier}/{name}"
        return template.format(lake=self.paths.lake.rstrip("/"))

    def catalog(self) -> dict[str, str]:
        """All logical table names mapped to URIs."""
        return {name: self.table_uri(name) for name in self.table_names()}


def default_conf_dir() -> Path:
    """``$DECISIONLAKE_CONF`` or the ``conf/`` folder of the source checkout."""
    explicit = os.environ.get("DECISIONLAKE_CONF")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[2] / "conf"


def load_config(
    env: str,
    *,
    conf_dir: str | Path | None = None,
    overrides: typing.Sequence[str] | typing.Mapping[str, Any] = (),
    environ: typing.Mapping[str, str] | None = None,
) -> AppConfig:
    """Load ``conf/base`` + ``conf/<env>`` (+ overrides) into a validated :class:`AppConfig`.

    Args:
        env: Environment name, one of :data:`ENVIRONMENTS` or any folder under ``conf/``.
        conf_dir: Folder holding ``base/`` and the overlays; defaults to :func:`default_conf_dir`.
        overrides: ``key.path=value`` strings (values parsed as YAML) or a mapping of the same.
        environ: Variables for ``${...}`` interpolation; defaults to ``os.environ``.
    """
    root = Path(conf_dir) if conf_dir else default_conf_dir()
    if not (root / "base").is_dir():
        raise ConfigError(
            f"config folder {root}/base not found (set --config or DECISIONLAKE_CONF)"
        )
    if not (root / env).is_dir() or env in ("base", MODELS_DIR):
        available = sorted(
            p.name for p in root.iterdir() if p.is_dir() and p.name not in ("base", MODELS_DIR)
        )
        raise ConfigError(f"env: unknown environment {env!r} (available: {', '.join(available)})")

    merged: dict[str, Any] = {}
    for layer in _layers(root, env, seen=()):
        merged = _deep_merge(merged, layer)
    for key, value in _parse_overrides(overrides).items():
        _set_path(merged, key, value)
    merged["env"] = env

    variables = dict(os.environ if environ is None else environ)
    variables.setdefault("PROJECT_ROOT", str(root.resolve().parent))
    variables.setdefault("DL_DATA_DIR", str(Path(variables["PROJECT_ROOT"]) / "data"))
    resolved = _interpolate(merged, variables, path="")
    raw_models = resolved.pop("models", None) or {}
    if not isinstance(raw_models, dict):
        raise ConfigError("models: expected a mapping of model name to spec")
    cfg = _build(AppConfig, resolved, path="")
    models, model_errors = _build_models(raw_models)
    cfg = dataclasses.replace(cfg, models=models, model_errors=model_errors)
    for table, expectations in cfg.quality.expectations.items():
        for i, e in enumerate(expectations):
            if e.severity == "quarantine" and e.rule not in QUARANTINABLE:
                raise ConfigError(
                    f"quality.expectations.{table}[{i}]: severity quarantine needs a row rule "
                    f"({', '.join(QUARANTINABLE)}), not {e.rule}"
                )
    for role, grants in cfg.access.roles.items():
        for tier in [*grants.read, *grants.write]:
            if tier not in cfg.access.tiers:
                raise ConfigError(f"access.roles.{role}: unknown tier {tier!r}")
    return cfg


def _build_models(raw: dict[str, Any]) -> tuple[dict[str, ModelSpec], dict[str, str]]:
    """Each spec on its own: a broken one is set aside with its error instead of failing all."""
    models: dict[str, ModelSpec] = {}
    errors: dict[str, str] = {}
    for name, value in raw.items():
        try:
            spec = _build(ModelSpec, value, path=f"models.{name}")
            check_spec(name, spec)
        except ConfigError as exc:
            errors[str(name)] = str(exc)
        else:
            models[str(name)] = spec
    return models, errors


def _layers(root: Path, env: str, seen: tuple[str, ...]) -> list[dict[str, Any]]:
    """Base first, then inherited overlays, then the env's own files."""
    if env in seen:
        raise ConfigError(f"inherit: cycle through {' -> '.join((*seen, env))}")
    own = _read_folder(root / env)
    parents = own.pop("inherit", [])
    if isinstance(parents, str):
        parents = [parents]
    layers: list[dict[str, Any]] = [] if seen else [_read_folder(root / "base"), _models(root)]
    for parent in parents:
        if not (root / parent).is_dir():
            raise ConfigError(f"inherit: environment {parent!r} (from {env}) not found")
        layers.extend(_layers(root, parent, seen=(*seen, env)))
    layers.append(own)
    return layers


def _models(root: Path) -> dict[str, Any]:
    """``conf/models/<name>.yaml`` become ``models.<name>``; overlays may change them."""
    specs: dict[str, Any] = {}
    for path in sorted((root / MODELS_DIR).glob("*.yaml")):
        with path.open(encoding="utf-8") as handle:
            content = yaml.safe_load(handle) or {}
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        specs[path.stem] = content
    return {"models": specs} if specs else {}


def _read_folder(folder: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(folder.glob("*.yaml")):
        with path.open(encoding="utf-8") as handle:
            content = yaml.safe_load(handle) or {}
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        merged = _deep_merge(merged, content)
    return merged


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_overrides(
    overrides: typing.Sequence[str] | typing.Mapping[str, Any],
) -> dict[str, Any]:
    if isinstance(overrides, typing.Mapping):
        return dict(overrides)
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        parsed[key.strip()] = yaml.safe_load(raw) if raw else ""
    return parsed


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    # Table names contain dots themselves, so "tables.bronze.clickstream" splits once.
    head, _, rest = dotted.partition(".")
    if head == "tables" and rest:
        tree.setdefault("tables", {})[rest] = value
        return
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def _interpolate(value: Any, variables: typing.Mapping[str, str], path: str) -> Any:
    if isinstance(value, dict):
        return {
            k: _interpolate(v, variables, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, variables, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in variables and variables[name] != "":
            return variables[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: environment variable {name} is not set")

    for _ in range(5):
        expanded = _VAR.sub(replace, value)
        if expanded == value:
            break
        value = expanded
    return value


def _build(cls: Any, data: Any, path: str) -> Any:
    """Build a dataclass from plain data, strictly."""
    where = path or "<root>"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{path}." if path else ""
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key (allowed: {', '.join(sorted(fields))})"
        )
    kwargs: dict[str, Any] = {}
    for name, fld in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], sub)
            check = fld.metadata.get("check")
            if check and kwargs[name] is not None:
                accepts, rule = _CHECKS[check]
                if not accepts(kwargs[name]):
                    raise ConfigError(f"{sub}: {kwargs[name]!r} {rule}")
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: missing required value")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return _coerce(options[0], value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return {str(k): _coerce(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    if tp is Any:
        return value
    raise ConfigError(f"{path}: unsupported type {tp!r}")
