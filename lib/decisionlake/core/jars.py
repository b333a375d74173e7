"""Locate the JVM jars that the project resolves from Maven (see ``scripts/resolve-jars``)."""

from __future__ import annotations

import os
from pathlib import Path

SETUP_COMMAND = "make jars"

# Jar name prefixes required for local runs; versions are pinned in scripts/jars/pom.xml.
REQUIRED_JARS = (
    "delta-spark_2.13-",
    "delta-storage-",
    "hadoop-aws-",
    "postgresql-",
)


class MissingJarsError(RuntimeError):
    """Raised when the jar cache lacks a required jar."""


def jar_dir() -> Path:
    """``$DECISIONLAKE_JARS`` or ``.cache/jars`` in the source checkout."""
    explicit = os.environ.get("DECISIONLAKE_JARS")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[3] / ".cache" / "jars"


def local_jars(folder: Path | None = None) -> list[Path]:
    """All cached jars, after checking that the required ones are there.

    Raises:
        MissingJarsError: naming the missing jars and the command that fetches them.
    """
    folder = folder or jar_dir()
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    names = [j.name for j in jars]
    missing = [p for p in REQUIRED_JARS if not any(n.startswith(p) for n in names)]
    if missing:
        raise MissingJarsError(
            f"missing jars in {folder}: {', '.join(p.rstrip('-') for p in missing)}; "
            f"run `{SETUP_COMMAND}` to resolve them from Maven"
        )
    return jars


def require_jar(prefix: str, feature: str, folder: Path | None = None) -> None:
    """Fail clearly when an optional feature's jar is not in the cache."""
    folder = folder or jar_dir()
    if not any(folder.glob(f"{prefix}*.jar")):
        raise MissingJarsError(
            f"{feature} needs {prefix.rstrip('-')}.jar in {folder}; add it to "
            f"scripts/jars/pom.xml and run `{SETUP_COMMAND}`"
        )
