"""Right to erasure on a small lake: exactly one person, whole identifiers, honest counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from decisionlake.io import lake
from decisionlake.ops import erase as erasure

from .conftest import make_config

# The erasure log names requests by a keyed token: the key is in (moto's) Secrets Manager.
pytestmark = pytest.mark.integration

CRM = T.StructType(
    [
        T.StructField("advisor_id", T.StringType()),
        T.StructField("email", T.StringType()),
        T.StructField("phone", T.StringType()),
    ]
)
ADVISORS = T.StructType([T.StructField("advisor_id", T.StringType())])
QUARANTINE = T.StructType(
    [T.StructField("ingest_date", T.StringType()), T.StructField("raw_line", T.StringType())]
)
RAW_LINES = [
    ("2026-11-24", '{"advisor_id": "ADV000011", "page": "/funds"}'),
    ("2026-11-24", '{"advisor_id": "ADV000017", "page": "/funds"}'),
    ("2026-11-24", "call back ADV000011."),  # the id ends a sentence: still a whole id
    ("2026-11-24", '{"email": "ANN@example.com", "x": 1}'),  # addresses ignore case
    ("2026-11-24", '{"email": "joann@example.com.au"}'),  # another address around Ann's
    ("2026-11-24", "ADV0000111 is somebody else"),
    ("2026-11-24", "{ broken json"),
]


@pytest.fixture
def small_lake(spark: SparkSession, tmp_path: Path, moto_server: object) -> dict:
    cfg = make_config("test", tmp_path)
    tables = {
        "bronze.crm_advisors": spark.createDataFrame(
            [("ADV000011", "Ann@Example.com", "555-0101"), ("ADV000017", "bo@example.com", "")],
            CRM,
        ),
        "silver.advisors": spark.createDataFrame([("ADV000011",), ("ADV000017",)], ADVISORS),
        "bronze.clickstream_quarantine": spark.createDataFrame(RAW_LINES, QUARANTINE),
    }
    for name, df in tables.items():
        lake.overwrite_table(df, cfg.table_uri(name))
    return {"cfg": cfg, "tables": list(tables)}


def _state(spark: SparkSession, cfg, names: list[str]) -> dict[str, tuple[int, int]]:
    """(latest version, rows) per table."""
    uris = {n: cfg.table_uri(n) for n in names}
    return {
        n: (lake.table_version(spark, u), lake.read_delta(spark, u).count())
        for n, u in uris.items()
    }


def test_an_unknown_or_prefix_id_removes_nothing_and_vacuums_nothing(
    spark: SparkSession, small_lake: dict
) -> None:
    cfg, names = small_lake["cfg"], small_lake["tables"]
    before = _state(spark, cfg, names)
    with pytest.raises(erasure.ErasureRefusedError, match=r"not in bronze\.crm_advisors"):
        erasure.erase(spark, cfg, advisor_id="ADV00001", warehouse=False)
    # Forced, the prefix of two real ids still matches neither of them.
    result = erasure.erase(spark, cfg, advisor_id="ADV00001", warehouse=False, force=True)
    assert result["removed"] == {} and result["purged"] == [] and not result["known"]
    assert _state(spark, cfg, names) == before
    for name in names:  # time travel intact: nothing was vacuumed
        uri = cfg.table_uri(name)
        assert lake.read_delta(spark, uri, version=0).count() == before[name][1]
        assert DeltaTable.forPath(spark, uri).history().count() == 1


def test_one_person_is_removed_exactly_and_counted_as_removed(
    spark: SparkSession, small_lake: dict
) -> None:
    cfg, names = small_lake["cfg"], small_lake["tables"]
    before = _state(spark, cfg, names)
    result = erasure.erase(spark, cfg, advisor_id="ADV000011", warehouse=False)
    after = _state(spark, cfg, names)
    gone = {n: before[n][1] - after[n][1] for n in names if before[n][1] != after[n][1]}
    assert result["removed"] == gone  # what is printed is what left the tables
    assert gone == {
        "bronze.crm_advisors": 1,
        "silver.advisors": 1,
        "bronze.clickstream_quarantine": 3,  # the JSON row, the sentence, Ann's e-mail
    }
    assert sorted(result["purged"]) == sorted(gone)
    left = {
        r["raw_line"]
        for r in lake.read_delta(spark, cfg.table_uri("bronze.clickstream_quarantine")).collect()
    }
    assert left == {
        '{"advisor_id": "ADV000017", "page": "/funds"}',
        '{"email": "joann@example.com.au"}',
        "ADV0000111 is somebody else",
        "{ broken json",
    }
    # Purged and vacuumed: the version before the erasure can no longer be read.
    with pytest.raises(Exception):  # noqa: B017 - Spark raises a Java-backed error
        lake.read_delta(spark, cfg.table_uri("silver.advisors"), version=0).collect()


@pytest.mark.parametrize(
    "argv",
    [
        ["--advisor-id", "x' OR '1'='1"],
        ["--advisor-id", "{"],
        ["--email", "not an address"],
        ["--advisor-id", "ADV000011", "--set", "storage.no_such_key=1"],
    ],
)
def test_requests_that_cannot_name_one_person_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], moto_server: object
) -> None:
    assert erasure.main(["--env", "test", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("erase: ") and "Traceback" not in err


def test_an_erasure_stopped_before_its_vacuum_is_finished_by_the_next_request(
    spark: SparkSession, small_lake: dict
) -> None:
    cfg = small_lake["cfg"]
    first = erasure.erase(spark, cfg, advisor_id="ADV000011", warehouse=False, vacuum=False)
    assert first["removed"]["silver.advisors"] == 1 and first["purged"] == []
    old = lake.read_delta(spark, cfg.table_uri("silver.advisors"), version=0)
    assert old.where("advisor_id = 'ADV000011'").count() == 1  # still in time travel
    # The CRM no longer knows the person, but the log says the purge is pending: no --force.
    again = erasure.erase(spark, cfg, advisor_id="ADV000011", warehouse=False)
    assert again["removed"] == {}
    assert sorted(again["pending_before"]) == sorted(first["removed"]) == sorted(again["purged"])
    with pytest.raises(Exception):  # noqa: B017 - the old version's files are gone
        lake.read_delta(spark, cfg.table_uri("silver.advisors"), version=0).collect()
    log = lake.read_delta(spark, cfg.table_uri("ops.erasures"))
    assert {r["status"] for r in log.collect()} == {"purged"}
    assert "ADV000011" not in str(log.collect())  # the log names no person
    with pytest.raises(erasure.ErasureRefusedError):  # nothing pending any more
        erasure.erase(spark, cfg, advisor_id="ADV000011", warehouse=False)
