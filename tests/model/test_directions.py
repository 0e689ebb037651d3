"""Behavioural tests of the small project's trained model (Made-With-ML's `tests/model`).

The synthetic generator's documented engagement function (tweetops.ingest.synthetic) says which
way each input moves engagement: reach (followers) and media raise it, a reply lowers it; the
number of mentions is not in it at all. The model, trained on such tweets, must move its
predictions the same way. Each test changes one input of the same real rows (the test split of
the training table) and compares the mean prediction, so a single tree's noise does not decide.
"""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc import PyFuncModel

from tests.conftest import TrainedProject
from tests.support.stores import STORE_NAME, sqlite_uri
from tweetops.dataset import is_test_id
from tweetops.schema import MODEL_INPUT_COLUMNS

pytestmark = pytest.mark.slow  # the small project is built (ingest, features, train) once


@pytest.fixture(scope="module")
def model(trained_project_template: TrainedProject) -> Iterator[PyFuncModel]:
    """The small project's trained pyfunc model, the one promote would register and serve."""
    root = trained_project_template.root
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(root / STORE_NAME))
        yield mlflow.pyfunc.load_model(trained_project_template.trained.model_uri)


@pytest.fixture(scope="module")
def rows(trained_project_template: TrainedProject) -> pd.DataFrame:
    """The model's inputs of the test rows (the tweets the model never trained on)."""
    settings = trained_project_template.settings()
    table = pd.read_parquet(trained_project_template.root / settings.train.training_rows_dir)
    split = settings.train
    test = table[
        [
            is_test_id(tweet_id, seed=split.seed, test_fraction=split.test_fraction)
            for tweet_id in table["tweet_id"]
        ]
    ]
    assert len(test) > 100
    return test[list(MODEL_INPUT_COLUMNS)].reset_index(drop=True)


def _mean_prediction(model: PyFuncModel, rows: pd.DataFrame, **changes: object) -> float:
    changed = rows.assign(**changes)
    return float(np.mean(np.asarray(model.predict(changed), dtype=float)))


def test_more_followers_predict_more_engagement(model: PyFuncModel, rows: pd.DataFrame) -> None:
    # 0.55 * log1p(followers): from 50 to 50,000 followers is +3.8 in log engagement
    few = _mean_prediction(model, rows, followers_count=50)
    many = _mean_prediction(model, rows, followers_count=50_000)
    assert many > few + 0.5


def test_media_predicts_more_engagement(model: PyFuncModel, rows: pd.DataFrame) -> None:
    # +0.45 * has_media
    assert _mean_prediction(model, rows, has_media=True) > _mean_prediction(
        model, rows, has_media=False
    )


def test_a_reply_predicts_less_engagement(model: PyFuncModel, rows: pd.DataFrame) -> None:
    # -0.80 * is_reply
    assert _mean_prediction(model, rows, is_reply=True) < _mean_prediction(
        model, rows, is_reply=False
    )


def test_mentions_barely_move_the_prediction(model: PyFuncModel, rows: pd.DataFrame) -> None:
    # mentions are not in the engagement function: what the model learnt from them is noise,
    # small beside what reach moves
    shift = abs(
        _mean_prediction(model, rows, mention_count=5)
        - _mean_prediction(model, rows, mention_count=0)
    )
    reach = _mean_prediction(model, rows, followers_count=50_000) - _mean_prediction(
        model, rows, followers_count=50
    )
    assert shift < 0.1 * reach
