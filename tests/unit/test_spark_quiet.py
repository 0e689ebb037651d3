"""Spark's driver is quiet from its first line at the default verbosity, and as usual under -v."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PARAMS_FILE
from tweetops.logs import configure_logging
from tweetops.settings import load_settings
from tweetops.spark import QUIET_CONF_DIR, driver_log_level, quiet_driver_options


@pytest.fixture
def clean_spark_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("SPARK_HOME", "SPARK_CONF_DIR", "SPARK_LOCAL_IP"):
        monkeypatch.delenv(name, raising=False)
    yield
    configure_logging(0)


def test_default_verbosity_points_the_driver_at_the_shipped_log4j2_file(
    clean_spark_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_logging(0)
    settings = load_settings(
        PARAMS_FILE, ["spark.conf={'spark.driver.extraJavaOptions': '-Dkeep=1'}"]
    ).spark
    options = quiet_driver_options(settings)
    java = options["spark.driver.extraJavaOptions"]
    match = re.fullmatch(r"-Dlog4j2\.configurationFile=(\S+) -Dkeep=1", java)
    assert match is not None, java  # the user's own driver options are kept
    config = Path(match.group(1)).read_text()
    assert "rootLogger.level = error" in config
    assert (QUIET_CONF_DIR / "spark-env.sh").exists()

    assert os.environ["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert os.environ["SPARK_CONF_DIR"] == str(QUIET_CONF_DIR)
    assert driver_log_level(settings) == "ERROR"


def test_a_users_spark_installation_keeps_its_own_conf_dir(
    clean_spark_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_HOME", "/opt/spark")
    configure_logging(0)
    quiet_driver_options(load_settings(PARAMS_FILE, []).spark)

    assert "SPARK_CONF_DIR" not in os.environ


def test_verbose_leaves_spark_as_it_is_and_shows_its_warnings(clean_spark_env: None) -> None:
    configure_logging(1)
    settings = load_settings(PARAMS_FILE, []).spark
    assert quiet_driver_options(settings) == {}
    assert driver_log_level(settings) == "WARN"
