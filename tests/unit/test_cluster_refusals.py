"""Workers that share nothing with the driver: locations, the workers' Python, refusals."""

from __future__ import annotations

import logging
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import PARAMS_FILE
from tweetops.errors import TweetopsError
from tweetops.settings import load_settings
from tweetops.spark import (
    PRELOADING_DAEMON,
    build_spark,
    cluster_storage_error,
    package_zip,
    python_for_workers,
    spark_path,
    start_error_cause,
)
from tweetops.tune.step import FailedTrialLog, check_backend, error_line, first_trial_error


def test_a_file_uri_is_a_local_path_for_python_and_spark(tmp_path: Path) -> None:
    shared = tmp_path / "shared folder"
    settings = load_settings(
        PARAMS_FILE,
        [f"data.training_rows={shared.as_uri()}", f"predict.input_path={shared.as_uri()}"],
    )
    assert settings.train.training_rows_dir == shared
    assert settings.features.training_rows_dir == shared
    assert settings.predict.input_path == shared
    assert spark_path(settings.train.training_rows_dir) == str(shared.resolve())


def test_remote_uris_reach_spark_unchanged_where_spark_alone_reads_and_writes() -> None:
    settings = load_settings(
        PARAMS_FILE,
        ["predict.input_path=s3a://bucket/rows.jsonl", "data.predictions=hdfs://nn:8020/out"],
    )
    assert settings.predict.input_path == "s3a://bucket/rows.jsonl"
    assert settings.predict.output_path == "hdfs://nn:8020/out"
    assert spark_path(settings.predict.output_path) == "hdfs://nn:8020/out"


def test_relative_local_paths_are_resolved_as_before(tmp_path: Path) -> None:
    settings = load_settings(PARAMS_FILE)
    assert settings.train.training_rows_dir == Path("data/features/training")
    assert spark_path(settings.train.training_rows_dir) == str(
        Path("data/features/training").resolve()
    )


@pytest.mark.parametrize(
    "override",
    ["features.raw_dir=s3a://bucket/raw", "data.training_rows=hdfs://nn:8020/training"],
)
def test_a_remote_uri_where_python_handles_the_folder_is_refused_in_one_sentence(
    override: str,
) -> None:
    with pytest.raises(TweetopsError) as refused:
        load_settings(PARAMS_FILE, [override])
    message = str(refused.value)
    assert "remote URIs work only where Spark alone reads and writes" in message
    assert "file:/// URI on storage every node mounts" in message
    assert "\n" not in message


def test_a_file_uri_with_a_host_is_refused() -> None:
    with pytest.raises(TweetopsError, match="file:///path"):
        load_settings(PARAMS_FILE, ["data.users=file://otherhost/data/users"])


def test_a_model_uri_is_not_taken_for_a_location() -> None:
    settings = load_settings(PARAMS_FILE, ["predict.model_uri=file:///tmp/model"])
    assert settings.predict.model_uri == "file:///tmp/model"


def test_local_masters_pin_the_workers_to_the_driver_python() -> None:
    local = load_settings(PARAMS_FILE, ["spark.master=local[2]"]).spark
    assert python_for_workers(local, "/opt/other/python3") == sys.executable


def test_a_cluster_keeps_the_workers_python_the_user_chose() -> None:
    cluster = load_settings(PARAMS_FILE, ["spark.master=spark://127.0.0.1:7077"]).spark
    assert python_for_workers(cluster, "/opt/venv/bin/python3") is None
    configured = load_settings(
        PARAMS_FILE,
        ["spark.master=spark://127.0.0.1:7077", "spark.conf={spark.pyspark.python: /opt/py}"],
    ).spark
    assert python_for_workers(configured, None) is None
    assert python_for_workers(cluster, None) == sys.executable


def test_the_package_zip_holds_every_module_of_tweetops() -> None:
    package = Path(__import__("tweetops").__file__).parent
    with zipfile.ZipFile(package_zip()) as archive:
        names = set(archive.namelist())
    expected = {f"tweetops/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert expected <= names
    assert f"{PRELOADING_DAEMON.replace('.', '/')}.py" in names
    assert package_zip() == package_zip()  # built once per process


def test_a_spark_start_error_names_its_last_caused_by() -> None:
    message = (
        "An error occurred while calling None.org.apache.spark.api.java.JavaSparkContext.\n"
        ": org.apache.spark.SparkException: Could not parse Master URL\n"
        "\tat org.apache.spark.SparkContext...\n"
        "Caused by: java.io.IOException: wrapper\n"
        "\tat ...\n"
        "Caused by: java.net.BindException: Cannot assign requested address\n"
    )
    assert start_error_cause(message, "Py4JJavaError") == (
        "java.net.BindException: Cannot assign requested address"
    )
    assert start_error_cause("one line\nmore", "X") == "one line"


@pytest.mark.parametrize(
    "overrides, environment",
    [
        (["spark.master=sc://127.0.0.1:15002"], {}),
        (["spark.conf={spark.remote: 'sc://127.0.0.1:15002'}"], {}),
        ([], {"SPARK_REMOTE": "sc://127.0.0.1:15002"}),
    ],
)
def test_spark_connect_is_refused_before_anything_starts(
    overrides: list[str], environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(PARAMS_FILE, overrides)
    with pytest.raises(TweetopsError) as tune_refusal:
        check_backend(settings)
    assert "SparkTrials needs the classic sparkContext (hyperopt#905)" in str(tune_refusal.value)
    with pytest.raises(
        TweetopsError, match=r"Spark Connect \(sc://127.0.0.1:15002\) is not supported"
    ):
        build_spark(settings.spark)


@pytest.mark.parametrize("tracking_uri", ["sqlite:///mlflow.db", "file:///tmp/mlruns", None])
def test_spark_trials_on_a_cluster_with_a_local_tracking_store_is_refused(
    tracking_uri: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    if tracking_uri is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    settings = load_settings(PARAMS_FILE, ["spark.master=spark://127.0.0.1:7077"])
    with pytest.raises(TweetopsError, match="set MLFLOW_TRACKING_URI to a tracking server"):
        check_backend(settings)


def test_spark_trials_with_a_tracking_server_or_a_local_master_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    check_backend(load_settings(PARAMS_FILE, ["spark.master=local[2]"]))
    check_backend(load_settings(PARAMS_FILE, ["spark.master=spark://h:7077", "tune.backend=mllib"]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    check_backend(load_settings(PARAMS_FILE, ["spark.master=spark://h:7077"]))


def test_a_file_missing_on_the_executors_of_a_cluster_is_one_sentence() -> None:
    error = RuntimeError(
        "[FAILED_READ_FILE.FILE_NOT_EXIST] Error while reading file "
        "file:///home/me/proj/data/raw/tweets/part-0.jsonl. File does not exist.\n\tat ..."
    )
    refusal = cluster_storage_error(error, "spark://127.0.0.1:7077")
    assert refusal is not None
    assert "file:///home/me/proj/data/raw/tweets/part-0.jsonl" in str(refusal)
    assert "every node mounts at the same path" in str(refusal)
    assert cluster_storage_error(error, "local[2]") is None
    assert cluster_storage_error(RuntimeError("other"), "spark://h:7077") is None


PY4J_TASK_FAILURE = (
    "An error occurred while calling o123.collect.\n"
    ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 failed: "
    "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
    '  File "/opt/spark/python/pyspark/worker.py", line 1900, in main\n'
    "    func, profiler, deserializer, serializer = read_command(pickleSer, infile)\n"
    "ModuleNotFoundError: No module named 'tweetops'\n"
    "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException(...)\n"
    "Driver stacktrace:\n"
    "org.apache.spark.SparkException: Job aborted due to stage failure\n"
)


JVM_TASK_FAILURE = (
    "An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.\n"
    ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 0.0 "
    "failed 4 times, most recent failure: Lost task 0.3 in stage 0.0 (TID 3) (127.0.0.1 "
    'executor 0): java.io.IOException: Cannot run program "/gone/python": error=2, No such file'
    "\n\tat java.base/java.lang.ProcessBuilder.start(ProcessBuilder.java:1)\n"
    "Caused by: java.io.IOException: error=2, No such file or directory\n"
)


def test_the_error_line_of_a_trial_is_its_python_error_not_the_jvm_wrapper() -> None:
    assert error_line(PY4J_TASK_FAILURE) == "ModuleNotFoundError: No module named 'tweetops'"
    assert error_line("Traceback\n  x\nmlflow.exceptions.MlflowException: No Experiment") == (
        "mlflow.exceptions.MlflowException: No Experiment"
    )
    assert error_line("plain words\nmore") == "plain words"
    # no Python ran: the executor could not start the workers' interpreter
    assert error_line(JVM_TASK_FAILURE) == (
        'java.io.IOException: Cannot run program "/gone/python": error=2, No such file'
    )


def test_the_first_failed_trial_is_quoted_from_its_document_or_from_the_log() -> None:
    failures = FailedTrialLog()
    log = logging.getLogger("hyperopt-spark")
    log.addHandler(failures)
    try:
        log.error("trial task 0 failed, exception is %s.\n None", PY4J_TASK_FAILURE)
        log.error("trial task 1 failed, exception is ValueError: later.\n None")
    finally:
        log.removeHandler(failures)
    spark_failed = SimpleNamespace(
        _dynamic_trials=[
            {"tid": 0, "misc": {"error": ("<class 'PythonException'>", None)}},
            {"tid": 1, "misc": {"error": ("<class 'ValueError'>", None)}},
        ]
    )
    assert first_trial_error(spark_failed, failures.messages) == (  # type: ignore[arg-type]
        "ModuleNotFoundError: No module named 'tweetops'"
    )
    objective_failed = SimpleNamespace(
        _dynamic_trials=[
            {"tid": 3, "misc": {"error": ("x", "Traceback\nKeyError: 'a'")}},
            {"tid": 2, "misc": {"error": ("x", "Traceback\nValueError: first")}},
            {"tid": 4, "misc": {}},
        ]
    )
    assert first_trial_error(objective_failed, {}) == "ValueError: first"  # type: ignore[arg-type]
    assert first_trial_error(SimpleNamespace(_dynamic_trials=[]), {}) is None  # type: ignore[arg-type]
