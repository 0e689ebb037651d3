"""The scikit-learn side of tuning: trials that SparkTrials runs on the executors.

SparkTrials spreads single-machine learners over a cluster, one trial per Spark task. Here each
trial fits scikit-learn's `RandomForestRegressor` with the Spark ML forest's hyperparameters
mapped one to one, on rows collected to pandas once and shipped to the executors once as a
broadcast variable (the objective pickles to a few hundred bytes: it holds the broadcast's id,
never the rows). `lang` is indexed the way Spark's `StringIndexer` indexes it, so both backends
see the same numbers. Nothing here touches MLflow: each trial hands its params and metrics to a
picklable `record_trial` callback that the tune step provides.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from hyperopt import STATUS_OK
from pyspark import Broadcast
from pyspark.sql import DataFrame

from tweetops.errors import TweetopsError
from tweetops.model.metrics import regression_metrics
from tweetops.model.pipeline import MIN_TRAINING_ROWS
from tweetops.schema import CATEGORICAL_FEATURES, LABEL_COLUMN, NUMERIC_FEATURES
from tweetops.settings import TrainSettings, TuneSettings

# (trial name, params, validation metrics, fit start and end in epoch ms) -> the id under which
# the trial was recorded
RecordTrial = Callable[[str, dict[str, Any], dict[str, float], int, int], str]


def epoch_ms() -> int:
    """Now, in milliseconds since the epoch (what MLflow's run start and end times hold)."""
    return time.time_ns() // 1_000_000


TUNED_KEYS = ("num_trees", "max_depth", "min_instances_per_node", "subsampling_rate")


@dataclass(frozen=True)
class CategoryIndex:
    """A label -> index map built as Spark's StringIndexer (frequencyDesc) builds it.

    The most frequent label gets 0; equal counts are ordered alphabetically; any other value
    (unseen or null) gets `len(labels)`, as `handleInvalid="keep"` does.
    """

    labels: tuple[str, ...]

    @classmethod
    def fit(cls, values: pd.Series) -> CategoryIndex:
        """Learn the labels of `values` (nulls are not labels)."""
        counts = values.dropna().astype(str).value_counts()
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls(labels=tuple(label for label, _ in ordered))

    def transform(self, values: pd.Series) -> np.ndarray:
        """The index of each value; unseen values and nulls get one extra index."""
        positions = {label: index for index, label in enumerate(self.labels)}
        unseen = float(len(self.labels))
        return np.array(
            [
                positions.get(value, unseen) if isinstance(value, str) else unseen
                for value in values
            ],
            dtype=np.float64,
        )


def max_features(strategy: str, num_trees: int) -> float | str:
    """scikit-learn's `max_features` for Spark's `featureSubsetStrategy` (regression)."""
    if strategy == "auto":  # Spark: all features for one tree, a third for a forest
        strategy = "all" if num_trees == 1 else "onethird"
    choices: dict[str, float | str] = {
        "onethird": 1.0 / 3.0,
        "all": 1.0,
        "sqrt": "sqrt",
        "log2": "log2",
    }
    return choices[strategy]


def forest_params(params: Mapping[str, Any], base: TrainSettings) -> dict[str, Any]:
    """RandomForestRegressor arguments for one trial, mapped one to one from Spark ML's."""
    num_trees = int(params["num_trees"])
    return {
        "n_estimators": num_trees,
        "max_depth": int(params["max_depth"]),
        "min_samples_leaf": int(params["min_instances_per_node"]),
        "bootstrap": True,
        "max_samples": float(params["subsampling_rate"]),
        "max_features": max_features(base.feature_subset_strategy, num_trees),
        "random_state": base.seed,
        "n_jobs": 1,
    }


def chosen_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """One trial's hyperparameters as train settings (Hyperopt yields floats for integers)."""
    return {
        "num_trees": int(params["num_trees"]),
        "max_depth": int(params["max_depth"]),
        "min_instances_per_node": int(params["min_instances_per_node"]),
        "subsampling_rate": round(float(params["subsampling_rate"]), 4),
    }


def trial_name(params: Mapping[str, Any]) -> str:
    """A run name that tells trials apart in a list: `trial nt45-d7-m3-s0.82`."""
    return (
        f"trial nt{params['num_trees']}-d{params['max_depth']}-"
        f"m{params['min_instances_per_node']}-s{params['subsampling_rate']:.2f}"
    )


@dataclass(frozen=True)
class LocalRows:
    """Fit and validation rows as numpy arrays, the categorical columns indexed."""

    fit_x: np.ndarray
    fit_y: np.ndarray
    validation_x: np.ndarray
    validation_y: np.ndarray
    index: CategoryIndex
    sampled_from: int  # rows before the max_rows cap (equal to the row count when uncapped)

    @property
    def rows(self) -> int:
        """Fit plus validation rows."""
        return len(self.fit_y) + len(self.validation_y)


def features_matrix(frame: pd.DataFrame, index: CategoryIndex) -> np.ndarray:
    """The forest's input columns in VectorAssembler order: indexed categoricals, numerics."""
    (categorical,) = CATEGORICAL_FEATURES
    columns = [
        index.transform(frame[categorical]),
        *(frame[name].to_numpy(dtype=np.float64) for name in NUMERIC_FEATURES),
    ]
    return np.column_stack(columns)


def collect_rows(
    fit_rows: DataFrame, validation_rows: DataFrame, counts: tuple[int, int], config: TuneSettings
) -> LocalRows:
    """Collect both splits to pandas once, a seeded sample of at most `tune.max_rows` rows."""
    total = counts[0] + counts[1]
    if total > config.max_rows:
        fraction = config.max_rows / total
        fit_rows = fit_rows.sample(fraction=fraction, seed=config.seed)
        validation_rows = validation_rows.sample(fraction=fraction, seed=config.seed)
    columns = [*CATEGORICAL_FEATURES, *NUMERIC_FEATURES, LABEL_COLUMN]
    fit: pd.DataFrame = fit_rows.select(*columns).toPandas()
    validation: pd.DataFrame = validation_rows.select(*columns).toPandas()
    if len(fit) < MIN_TRAINING_ROWS or len(validation) == 0:
        raise TweetopsError(
            f"tune.max_rows={config.max_rows} leaves {len(fit)} fit and {len(validation)} "
            f"validation rows: raise tune.max_rows to at least {4 * MIN_TRAINING_ROWS}."
        )
    index = CategoryIndex.fit(fit[CATEGORICAL_FEATURES[0]])
    return LocalRows(
        fit_x=features_matrix(fit, index),
        fit_y=fit[LABEL_COLUMN].to_numpy(dtype=np.float64),
        validation_x=features_matrix(validation, index),
        validation_y=validation[LABEL_COLUMN].to_numpy(dtype=np.float64),
        index=index,
        sampled_from=total,
    )


def fit_and_score(
    rows: LocalRows, params: Mapping[str, Any], base: TrainSettings
) -> dict[str, float]:
    """Fit one scikit-learn forest on the fit rows; its metrics on the validation rows."""
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(**forest_params(params, base))
    forest.fit(rows.fit_x, rows.fit_y)
    return regression_metrics(rows.validation_y, forest.predict(rows.validation_x))


@dataclass(frozen=True)
class SklearnObjective:
    """The Hyperopt objective SparkTrials ships to the executors: small by construction.

    It holds the broadcast (pickled as its id), the train settings and the recorder; the rows
    are read from the broadcast on the executor.
    """

    rows: Broadcast[LocalRows]
    base: TrainSettings
    record_trial: RecordTrial

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        """Fit, score and record one trial; Hyperopt's result dict."""
        chosen = chosen_params(params)
        started = epoch_ms()
        metrics = fit_and_score(self.rows.value, chosen, self.base)
        ended = epoch_ms()
        run_id = self.record_trial(
            trial_name(chosen),
            chosen,
            {f"validation_{name}": value for name, value in metrics.items()},
            started,
            ended,
        )
        return {"loss": metrics["rmse"], "status": STATUS_OK, "params": chosen, "run_id": run_id}
