"""What train hands promote is a typed contract: a renamed or missing field fails here."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest

from tweetops.contracts import SplitSpec, TrainedModel, read_contract, write_contract
from tweetops.errors import TweetopsError

TRAINED = TrainedModel(
    run_id="abc",
    model_uri="runs:/abc/model",
    metrics={"rmse": 0.7, "r2": 0.6},
    train_rows=80,
    test_rows=20,
    split=SplitSpec(
        seed=42, test_fraction=0.2, split_partitions=4, training_rows_dir="data/features/training"
    ),
)


def test_round_trip_gives_the_same_contract(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "train_run.json"
    write_contract(path, TRAINED)
    assert read_contract(path, TrainedModel, written_by="train") == TRAINED
    assert not list(path.parent.glob(".*.tmp"))  # written whole, through a temporary file


def test_the_file_names_the_run_shortly_for_dvc_exp_show(tmp_path: Path) -> None:
    trained = replace(TRAINED, run_id="3a51efa9390d49e593a02e30852facf6")
    assert trained.mlflow_run == "3a51efa9"
    path = tmp_path / "train_run.json"
    write_contract(path, trained)
    assert json.loads(path.read_text())["mlflow_run"] == "3a51efa9"
    # a report written before the field existed reads back with it
    older = {key: value for key, value in asdict(trained).items() if key != "mlflow_run"}
    path.write_text(json.dumps(older))
    assert read_contract(path, TrainedModel, written_by="train") == trained


def test_the_file_holds_exactly_the_contract_fields(tmp_path: Path) -> None:
    path = tmp_path / "train_run.json"
    write_contract(path, TRAINED)
    on_disk = json.loads(path.read_text())
    assert set(on_disk) == {field.name for field in fields(TrainedModel)}
    assert set(on_disk["split"]) == {field.name for field in fields(SplitSpec)}


@pytest.mark.parametrize(
    "broken",
    [
        lambda data: data.pop("model_uri"),
        lambda data: data.__setitem__("modelUri", data.pop("model_uri")),
        lambda data: data["split"].pop("seed"),
        lambda data: data.__setitem__("test_rows", "many"),
    ],
)
def test_a_missing_or_renamed_field_is_one_sentence(tmp_path: Path, broken) -> None:
    data = asdict(TRAINED)
    broken(data)
    path = tmp_path / "train_run.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TweetopsError, match=r"rerun `tweetops train`") as caught:
        read_contract(path, TrainedModel, written_by="train")
    assert "\n" not in str(caught.value)


def test_a_truncated_file_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "train_run.json"
    write_contract(path, TRAINED)
    path.write_text(path.read_text()[:40])
    with pytest.raises(TweetopsError, match="is not valid JSON"):
        read_contract(path, TrainedModel, written_by="train")


def test_a_missing_file_says_which_step_writes_it(tmp_path: Path) -> None:
    with pytest.raises(TweetopsError, match="run `tweetops train` first"):
        read_contract(tmp_path / "nope.json", TrainedModel, written_by="train")
