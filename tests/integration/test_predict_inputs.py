"""Predict on the inputs users have: pandas Parquet, no rows, wrong types, odd columns.

One trained and promoted model (real Spark, a real SQLite MLflow store); every bad input is one
sentence, and the printed score is on rows the model never trained on, or says it is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TEST_SPARK_OVERRIDES, copy_settings
from tweetops.dataset import is_test_id
from tweetops.errors import TweetopsError
from tweetops.features import build_features
from tweetops.ingest.step import ingest
from tweetops.predict import PredictResult, predict
from tweetops.promote import promote
from tweetops.schema import LABEL_COLUMN, MODEL_INPUT_COLUMNS
from tweetops.settings import Settings, load_settings
from tweetops.train import train

pytestmark = pytest.mark.slow


@dataclass
class Trained:
    root: Path
    rows: pd.DataFrame  # the training table, as pandas reads it
    seed: int
    test_fraction: float
    test_rows: int  # what train counted

    def predict(self, rows: pd.DataFrame | Path, *overrides: str) -> PredictResult:
        if isinstance(rows, pd.DataFrame):
            path = self.root / "input.parquet"
            rows.to_parquet(path)
            rows = path
        return predict(self.settings(f"predict.input_path={rows}", *overrides))

    def settings(self, *overrides: str) -> Settings:
        return load_settings(
            self.root / "params.yaml",
            [*TEST_SPARK_OVERRIDES, "predict.output_path=data/scored", *overrides],
        )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("predict") / "project"
    root.mkdir()
    copy_settings(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        settings = load_settings(
            root / "params.yaml",
            [
                *TEST_SPARK_OVERRIDES,
                "ingest.n_tweets=1500",
                "ingest.n_users=150",
                "train.num_trees=10",
            ],
        )
        ingest(settings)
        build_features(settings)
        result = train(settings)
        promote(settings)
        rows = pd.read_parquet(settings.train.training_rows_dir)
        yield Trained(
            root=root,
            rows=rows,
            seed=settings.train.seed,
            test_fraction=settings.train.test_fraction,
            test_rows=result.test_rows,
        )


def test_the_default_score_is_on_the_rows_the_model_never_trained_on(trained: Trained) -> None:
    result = predict(trained.settings())
    assert result.rows == len(trained.rows)
    test_ids = {
        tweet_id
        for tweet_id in trained.rows["tweet_id"]
        if is_test_id(tweet_id, seed=trained.seed, test_fraction=trained.test_fraction)
    }
    assert result.held_out and result.rmse_rows == len(test_ids) == trained.test_rows
    scored = pd.read_parquet(trained.root / "data" / "scored").set_index("tweet_id")
    test = scored.loc[sorted(test_ids)]
    expected = math.sqrt(float(np.mean((test["prediction"] - test[LABEL_COLUMN]) ** 2)))
    assert result.rmse == pytest.approx(expected, rel=1e-9)
    assert "on the" in result.summary() and "rows it never trained on" in result.summary()
    assert set(result.logged_metrics()) == {
        "predict_rows",
        "predict_test_rmse",
        "predict_rmse_rows",
    }


def test_without_tweet_ids_the_score_says_it_is_not_a_test_score(trained: Trained) -> None:
    rows = trained.rows.drop(columns=["tweet_id"]).head(50)
    result = trained.predict(rows)
    assert result.rows == 50 and not result.held_out and result.rmse is not None
    assert "may include rows it trained on: not a test score" in result.summary()
    assert "predict_test_rmse" not in result.logged_metrics()


def test_pandas_parquet_with_nanosecond_timestamps_and_extra_columns_scores(
    trained: Trained,
) -> None:
    rows = trained.rows.head(30).copy()
    rows["created_at"] = pd.to_datetime(rows["created_at"]).astype("datetime64[ns]")
    rows["comment"] = "an extra column"
    result = trained.predict(rows)
    assert result.rows == 30
    scored = pd.read_parquet(trained.root / "data" / "scored")
    assert scored["prediction"].notna().all() and "comment" not in scored.columns


def test_zero_rows_write_an_empty_output_and_no_score(trained: Trained) -> None:
    result = trained.predict(trained.rows.head(0))
    assert (result.rows, result.rmse, result.rmse_rows) == (0, None, 0)
    scored = pd.read_parquet(trained.root / "data" / "scored")
    assert len(scored) == 0 and "prediction" in scored.columns
    assert "rmse" not in result.summary()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda rows: rows.assign(hour_of_day=rows["hour_of_day"].astype(str)),
            r"^Column 'hour_of_day' of the input is string, but the model needs an integer column",
        ),
        (
            lambda rows: rows.assign(has_media=rows["has_media"].astype(int)),
            r"^Column 'has_media' of the input is bigint, but the model needs a boolean column",
        ),
        (
            lambda rows: rows.assign(hour_of_day=np.where(rows.index == 3, 99, 1)),
            r"^Column 'hour_of_day' is above 23 in a row of the input \(tweet \d+\)",
        ),
        (
            lambda rows: rows.assign(followers_count=np.where(rows.index == 5, -1, 10)),
            r"^Column 'followers_count' is below 0 in a row of the input \(tweet \d+\)",
        ),
        (  # pandas writes NaN to Parquet as null
            lambda rows: rows.assign(author_mean_engagement=np.where(rows.index == 2, np.nan, 1.0)),
            r"^Column 'author_mean_engagement' is null in a row of the input",
        ),
        (
            lambda rows: rows.drop(columns=["followers_count"]),
            r"^The input lacks the model's input columns \['followers_count'\]: predict needs",
        ),
    ],
)
def test_bad_input_is_one_sentence_before_spark_runs_the_model(
    trained: Trained, change: object, message: str
) -> None:
    rows = change(trained.rows.head(10).reset_index(drop=True))  # type: ignore[operator]
    with pytest.raises(TweetopsError, match=message) as refused:
        trained.predict(rows)
    assert "\n" not in str(refused.value) and "Exception" not in str(refused.value)


def test_an_unreadable_input_file_is_one_sentence(trained: Trained) -> None:
    garbage = trained.root / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(TweetopsError, match="cannot be read as Parquet or JSONL"):
        trained.predict(garbage)


def test_every_model_input_is_checked_by_kind(trained: Trained) -> None:
    # the whole training table passes the checks: the ranges hold for what features produce
    assert set(MODEL_INPUT_COLUMNS) <= set(trained.rows.columns)
    assert trained.predict(trained.rows.head(200)).rows == 200
