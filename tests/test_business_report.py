"""The business report in a real browser (headless Chromium): no console error, every chart
drawn, every section there, and the key figures equal to the tables they come from."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from decisionlake.io import lake
from decisionlake.jobs.monitor import MONITORING_SCHEMA
from decisionlake.models.explain import REASON_TYPE
from decisionlake.ops.business_report import SECTIONS, write_business_report

from .conftest import make_config

DAY = date(2026, 11, 24)


def _lake(spark: SparkSession, cfg) -> None:
    call_list = spark.createDataFrame(
        [(DAY, r, f"A{r}", 0.9 - r / 10, 1, 0, "high downloads, high sessions",
          ["downloads_30d high"], ["NWESX", "esg"], 3, "EMEA", "ria",
          "holdout" if r == 4 else "contact", 742, "1") for r in range(1, 5)],
        "run_date date, rank int, advisor_id string, score double, decile int, segment int, "
        "segment_name string, reasons array<string>, interests array<string>, "
        "days_since_last_contact int, region string, channel string, assignment string, "
        "campaign_period int, model_version string",
    )  # fmt: skip
    lake.overwrite_table(call_list, cfg.table_uri("gold.call_list"))
    uplift = spark.createDataFrame(
        [(DAY, None, 400, 380, 0.28, 0.2, 0.08, 0.02, 0.14, "contacting raised conversion"),
         (DAY, 1, 40, 38, 0.5, 0.3, 0.2, 0.0, 0.4, "no difference that the sample can show"),
         (DAY, 2, 40, 38, 0.3, 0.25, 0.05, -0.1, 0.2, "no difference that the sample can show")],
        "run_date date, decile int, contacted long, held_out long, contacted_rate double, "
        "held_out_rate double, uplift double, uplift_low double, uplift_high double, "
        "conclusion string",
    )  # fmt: skip
    lake.overwrite_table(uplift, cfg.table_uri("gold.campaign_uplift"))
    monitoring = spark.createDataFrame(
        [(date(2026, 11, d), "advisor_propensity", "1", kind, name, None, None, psi, None,
          None, "stable", value, 200, "r")
         for d in (22, 23, 24)
         for kind, name, psi, value in (("score", "score", 0.01 * d, None),
                                        ("performance", "areaUnderROC", None, 0.7))],
        MONITORING_SCHEMA,
    )  # fmt: skip
    lake.overwrite_table(monitoring, cfg.table_uri("ops.model_monitoring"))
    quality = spark.createDataFrame(
        [(date(2026, 11, d), f"rule{i}", i != 0 or d != 24) for d in (23, 24) for i in range(3)],
        "run_date date, rule string, passed boolean",
    )
    lake.overwrite_table(quality, cfg.table_uri("ops.dq_results"))
    scores = spark.createDataFrame(
        [(f"A{i}", "advisor_segments", DAY, i % 2, None) for i in range(10)],
        T_SCORES,
    )
    lake.overwrite_table(scores, cfg.table_uri("gold.scores"))


T_SCORES = (
    f"advisor_id string, model_name string, as_of_date date, segment int, "
    f"top_features {REASON_TYPE.simpleString()}"
)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "Chromium and its driver come from Debian packages: `make tools`"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.browser
def test_the_business_report_in_a_real_browser(spark: SparkSession, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    cfg = make_config(
        "test", tmp_path, **{"services.mlflow_tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}
    )
    _lake(spark, cfg)
    uri = write_business_report(spark, cfg, DAY)
    browser = _browser()
    try:
        browser.get(Path(uri).as_uri())
        browser.save_screenshot(str(tmp_path / "business-report.png"))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
        assert headings == list(SECTIONS)
        drawn = browser.execute_script(
            "return [...document.images].map(i => i.complete && i.naturalWidth > 0)"
        )
        assert len(drawn) == 3 and all(drawn)  # uplift by decile, model health, quality
        figure = {
            e.get_attribute("data-figure"): e.text
            for e in browser.find_elements(By.CSS_SELECTOR, "[data-figure]")
        }
        assert figure["contacts"] == "3" and figure["held_out"] == "1"  # 4 listed, 1 held out
        assert figure["uplift"] == "0.080" and figure["contacted_rate"] == "0.280"
        assert figure["conclusion"] == "contacting raised conversion"
        assert figure["rules_failed"] == "1"
        rows = browser.find_elements(By.CSS_SELECTOR, "h2 + p + table tbody tr")
        assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows[:3]] == ["A1", "A2", "A3"]
        details = browser.find_elements(By.TAG_NAME, "details")
        assert details and not any(d.get_attribute("open") for d in details)  # collapsed
    finally:
        browser.quit()
    assert (tmp_path / "business-report.png").stat().st_size > 10_000
