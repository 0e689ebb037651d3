"""The scikit-learn trials: same encoding as Spark ML, same hyperparameters, a small objective."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from pyspark.ml.feature import StringIndexer
from pyspark.sql import SparkSession

from tests.conftest import PARAMS_FILE
from tweetops.model.metrics import regression_metrics
from tweetops.settings import load_settings
from tweetops.tune.sklearn_trials import (
    CategoryIndex,
    LocalRows,
    SklearnObjective,
    fit_and_score,
    forest_params,
    max_features,
)
from tweetops.tune.trial_runs import TrialRecorder

BASE = load_settings(PARAMS_FILE).train


def test_lang_index_equals_spark_string_indexer(spark: SparkSession) -> None:
    # frequencies with ties (de/fr/it twice, ja/ko once) and a null
    fit = ["en"] * 5 + ["es"] * 3 + ["fr", "de", "it"] * 2 + ["ko", "ja", None]
    score = ["en", "it", "ja", "tlh", None, "de", "ko"]  # "tlh" unseen
    indexer = StringIndexer(inputCol="lang", outputCol="index", handleInvalid="keep")
    model = indexer.fit(spark.createDataFrame([(value,) for value in fit], "lang string"))
    spark_indices = [
        row["index"]
        for row in model.transform(
            spark.createDataFrame([(value,) for value in score], "lang string")
        ).collect()
    ]

    ours = CategoryIndex.fit(pd.Series(fit))
    assert list(ours.labels) == list(model.labels)
    assert ours.transform(pd.Series(score)).tolist() == spark_indices
    assert ours.transform(pd.Series(["tlh"]))[0] == len(model.labels)


def test_hyperparameters_map_one_to_one() -> None:
    params = {
        "num_trees": 45,
        "max_depth": 7,
        "min_instances_per_node": 3,
        "subsampling_rate": 0.82,
    }
    mapped = forest_params(params, BASE)
    assert mapped == {
        "n_estimators": 45,
        "max_depth": 7,
        "min_samples_leaf": 3,
        "bootstrap": True,
        "max_samples": 0.82,
        "max_features": pytest.approx(1 / 3),
        "random_state": BASE.seed,
        "n_jobs": 1,
    }
    assert max_features("auto", 10) == pytest.approx(1 / 3)  # Spark: a third for a forest
    assert max_features("auto", 1) == 1.0  # ... and every feature for a single tree
    assert max_features("all", 10) == 1.0
    assert max_features("sqrt", 10) == "sqrt" and max_features("log2", 10) == "log2"


def test_metrics_match_their_definitions() -> None:
    actual, predicted = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 4.0])
    metrics = regression_metrics(actual, predicted)
    assert metrics["rmse"] == pytest.approx(np.sqrt((0.25 + 1.0) / 4))
    assert metrics["mae"] == pytest.approx(1.5 / 4)
    assert metrics["r2"] == pytest.approx(1 - 1.25 / 5.0)


def _rows(n: int) -> LocalRows:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 18))
    y = 2 * x[:, 1] + rng.normal(scale=0.1, size=n)
    return LocalRows(
        fit_x=x[: n // 2],
        fit_y=y[: n // 2],
        validation_x=x[n // 2 :],
        validation_y=y[n // 2 :],
        index=CategoryIndex(("en",)),
        sampled_from=n,
    )


def test_objective_ships_the_rows_by_broadcast_not_in_its_closure(spark: SparkSession) -> None:
    rows = _rows(20_000)  # about 3 MB of float64
    shipped = spark.sparkContext.broadcast(rows)
    try:
        recorder = TrialRecorder("sqlite:////tmp/none.db", "0", "parent", "spark_trials")
        objective = SklearnObjective(shipped, BASE, recorder)
        assert len(cloudpickle.dumps(objective)) < 4_000
        assert len(cloudpickle.dumps(rows)) > 1_000_000
    finally:
        # not destroy(): pickling outside a job leaves the broadcast registered for the next job
        shipped.unpersist(blocking=True)


def test_a_seeded_forest_scores_the_same_twice() -> None:
    rows = _rows(600)
    params = {"num_trees": 8, "max_depth": 4, "min_instances_per_node": 2, "subsampling_rate": 0.8}
    first, second = fit_and_score(rows, params, BASE), fit_and_score(rows, params, BASE)
    assert first == second
    assert first["r2"] > 0.7  # it learned y = 2 x1


def test_local_python_workers_start_with_the_trial_libraries_imported(spark: SparkSession) -> None:
    """SparkTrials' tasks never read their input, so each trial runs in a freshly forked worker:
    the local daemon has imported scikit-learn and the objective's module before forking."""

    def modules_on_arrival(_: object) -> list[bool]:
        import sys

        return [
            name in sys.modules
            for name in (
                "sklearn.ensemble",
                "tweetops.tune.sklearn_trials",
                "tweetops.tune.trial_runs",
                "mlflow.tracking",
            )
        ]

    # the task ignores its input, as SparkTrials' does
    arrived = spark.sparkContext.parallelize([0], 1).mapPartitions(modules_on_arrival).collect()
    assert arrived == [True, True, True, True]
