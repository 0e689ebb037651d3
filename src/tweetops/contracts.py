"""Typed contracts between steps: what one step hands the next, written and read here only.

A contract is a frozen dataclass serialised as JSON under `reports/`. Reading validates it
against the dataclass, so a renamed or missing field fails with one sentence naming the file
and the step to rerun, not with a KeyError in the next step.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from tweetops.errors import TweetopsError

T = TypeVar("T")
SHORT_RUN_ID_LENGTH = 8  # of TrainedModel.mlflow_run: unique among a project's runs


@dataclass(frozen=True)
class SplitSpec:
    """How a training run split its rows into training and test rows."""

    seed: int
    test_fraction: float
    split_partitions: int
    training_rows_dir: str


@dataclass(frozen=True)
class TrainedModel:
    """What train hands promote: the run, its logged models, its scores and its split.

    `model_uri` is the JVM-free pyfunc (registered and served), `spark_model_uri` the same
    pipeline as an MLflow Spark model.
    """

    run_id: str
    model_uri: str
    metrics: dict[str, float]
    train_rows: int
    test_rows: int
    split: SplitSpec
    spark_model_uri: str = ""
    # the run id's first characters, always derived from it: `dvc exp show` shows them as
    # promote's param, where the whole id would push the changed params off a 160-column
    # terminal; MLflow's runs search finds the run with `attributes.run_id LIKE '<them>%'`
    mlflow_run: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mlflow_run", self.run_id[:SHORT_RUN_ID_LENGTH])


@dataclass(frozen=True)
class TuneOutcome:
    """What tune hands train: the best hyperparameters and the run that found them."""

    run_id: str
    backend: str
    best_params: dict[str, int | float]
    best_validation_rmse: float
    refit_validation_rmse: float
    best_trial_run_id: str
    max_evals: int
    trials: int


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` as JSON (keys in the payload's order, trailing newline), whole or not at all.

    The order is the writer's: `dvc exp show` and `dvc metrics diff` show a metrics file's keys in
    file order, so train writes the numbers a user reads first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def write_contract(path: Path, contract: Any) -> None:
    """Write a contract dataclass to `path`."""
    write_json(path, asdict(contract))


def read_contract(path: Path, kind: type[T], *, written_by: str) -> T:
    """Read the contract of type `kind` at `path`; `written_by` names the step that writes it.

    Raises TweetopsError (one sentence) when the file is missing, not JSON, or does not fit.
    """
    if not path.is_file():
        raise TweetopsError(
            f"{path} was not found: run `tweetops {written_by}` first, or point "
            f"the setting at the file a {written_by} run wrote."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TypeAdapter(kind).validate_python(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TweetopsError(
            f"{path} is not valid JSON ({exc.__class__.__name__}); rerun "
            f"`tweetops {written_by}` to write it again."
        ) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise TweetopsError(
            f"{path} does not hold what `tweetops {written_by}` writes "
            f"({where}: {first['msg']}); rerun `tweetops {written_by}`."
        ) from exc
