"""Train, promote and predict through MLflow's real stores (SQLite, and a real server)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from tests.conftest import FeaturedProject, Project, TrainedProject
from tests.support.mlflow_server import mlflow_server
from tweetops import registry
from tweetops.dataset import load_training_rows, split_train_test
from tweetops.errors import TweetopsError
from tweetops.predict import predict
from tweetops.promote import promote, split_of
from tweetops.schema import MODEL_INPUT_COLUMNS
from tweetops.tracking import dvc_hash
from tweetops.train import train

# fits, registrations and promotions on real Spark and MLflow: the slow loop, not `make check`
pytestmark = pytest.mark.slow


def test_train_logs_params_metrics_artifacts_lineage_and_model(
    trained_project: TrainedProject,
) -> None:
    settings = trained_project.settings()
    result = trained_project.trained

    run = MlflowClient().get_run(result.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["train.seed"] == "42"
    assert params["train.num_trees"] == "20"
    assert params["spark.master"] == "local[2]"
    # one name per setting, no empty values, folders in the settings artifact instead of params
    assert "" not in params.values()
    assert not any(key.endswith(("_dir", "_file")) for key in params)
    settings_logged = json.loads(
        Path(MlflowClient().download_artifacts(result.run_id, "settings.json")).read_text()
    )
    assert settings_logged["train.training_rows_dir"] == "data/features/training"
    assert settings_logged["train.num_trees"] == 20
    assert tags["mlflow.note.content"] == result.summary()
    for name in ("rmse", "mae", "r2", "baseline_rmse", "baseline_mae", "baseline_r2"):
        assert metrics[name] == pytest.approx(result.metrics[name])
    assert metrics["r2"] > metrics["baseline_r2"] + 0.3
    assert metrics["rmse"] < metrics["baseline_rmse"]
    assert tags["tweetops.step"] == "train"
    assert tags["tweetops.data.training.dvc_md5"] == dvc_hash(settings.train.training_rows_dir)
    assert tags["tweetops.data.training.dvc_md5"].endswith(".dir")
    assert tags["tweetops.version.pyspark"] and tags["tweetops.version.mlflow"]
    assert tags["tweetops.spark.master"] == "local[2]"
    assert run.inputs.dataset_inputs[0].dataset.name == "training_rows"

    artifacts = {item.path for item in MlflowClient().list_artifacts(result.run_id)}
    assert {
        "feature-importance.csv",
        "feature-importance.png",
        "predicted-vs-actual.png",  # the pictures `dvc plots show` draws, in the run
        "settings.json",
        "spark",
    } <= artifacts
    # the metrics file DVC compares holds the four numbers a user reads, in this order
    assert list(json.loads(settings.train.metrics_file.read_text())) == [
        "rmse",
        "r2",
        "mae",
        "baseline_rmse",
    ]
    importance = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=result.run_id, artifact_path="feature-importance.csv"
        )
    )
    assert importance["importance"].sum() == pytest.approx(1.0)
    assert importance.iloc[0]["feature"] == "followers_count"  # reach drives engagement

    # the served model is the JVM-free pyfunc; the Spark pipeline is logged beside it
    model_info = mlflow.models.get_model_info(result.model_uri)
    assert "spark" not in model_info.flavors
    # logged from code, as MLflow recommends: nothing pickled
    assert (
        model_info.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    )
    assert "spark" in mlflow.models.get_model_info(result.spark_model_uri).flavors
    assert sorted(model_info.metadata["input_kinds"]) == sorted(MODEL_INPUT_COLUMNS)
    assert model_info.metadata["input_ranges"]["hour_of_day"] == [0, 23]
    loaded = mlflow.pyfunc.load_model(result.model_uri)
    example = pd.DataFrame(
        [
            {
                **dict.fromkeys(MODEL_INPUT_COLUMNS, 0),
                "lang": "en",
                "verified": False,
                "has_media": False,
                "is_reply": False,
                "is_quote": False,
                "author_has_history": False,
                "followers_count": 1000,
            }
        ]
    )
    assert len(loaded.predict(example)) == 1

    on_disk = json.loads(settings.train.metrics_file.read_text())
    assert on_disk["rmse"] == pytest.approx(result.metrics["rmse"])


def test_split_does_not_depend_on_input_partitioning(
    trained_project_template: TrainedProject, spark: SparkSession
) -> None:
    template = trained_project_template
    rows = load_training_rows(spark, template.root / template.settings().train.training_rows_dir)

    def test_ids(frame) -> set[str]:
        _, test = split_train_test(frame, seed=42, test_fraction=0.2, partitions=4)
        return {row["tweet_id"] for row in test.select("tweet_id").collect()}

    baseline = test_ids(rows)
    assert test_ids(rows.repartition(7)) == baseline
    assert test_ids(rows.coalesce(1).orderBy("created_at")) == baseline
    _, other_seed = split_train_test(rows, seed=1, test_fraction=0.2, partitions=4)
    assert {row["tweet_id"] for row in other_seed.collect()} != baseline
    assert 0.1 < len(baseline) / rows.count() < 0.3


def test_champion_moves_only_when_the_challenger_wins(trained_project: TrainedProject) -> None:
    project = trained_project
    mediocre = project.settings("train.num_trees=3", "train.max_depth=3")
    train(mediocre)
    first = promote(mediocre)
    assert (first.version, first.promoted) == ("1", True)
    assert first.reason.startswith("no champion yet")

    worse = project.settings("train.num_trees=1", "train.max_depth=1")
    train(worse)
    second = promote(worse)
    assert second.version == "2" and not second.promoted
    assert second.champion_rmse is not None and second.challenger_rmse > second.champion_rmse
    assert "does not beat champion v1" in second.reason

    better = project.settings("train.num_trees=40", "train.max_depth=10")
    trained_better = train(better)
    third = promote(better)
    assert third.version == "3" and third.promoted
    assert "beats champion v1" in third.reason

    client = MlflowClient()
    assert str(client.get_model_version_by_alias("tweet-engagement", "champion").version) == "3"
    assert str(client.get_model_version_by_alias("tweet-engagement", "challenger").version) == "3"
    promotion = json.loads(better.promote.promotion_file.read_text())
    assert promotion["champion_version"] == "1" and promotion["promoted"] is True
    assert promotion["champion_after"] == "3"

    # every move is in the registry: the model's history and the versions' tags
    moves = registry.history(client, "tweet-engagement")
    assert [(m.action, m.from_version, m.to_version) for m in moves] == [
        ("promote", None, "1"),
        ("promote", "1", "3"),
    ]
    assert moves[1].challenger_rmse == pytest.approx(third.challenger_rmse)
    assert moves[1].champion_rmse == pytest.approx(third.champion_rmse)
    assert "beats champion v1" in moves[1].reason
    assert client.get_model_version("tweet-engagement", "3").tags["tweetops.champion_since"]
    assert client.get_model_version("tweet-engagement", "1").tags["tweetops.champion_until"]
    shown = _tweetops(project, "registry", "history")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "tweet-engagement: 2 alias move(s), oldest first"
    assert lines[2].split()[1:4] == ["promote", "-", "v1"]
    assert lines[3].split()[1:4] == ["promote", "v1", "v3"]

    rolled = _tweetops(project, "registry", "rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert "moved from v3 back to v1" in rolled.stdout
    assert str(client.get_model_version_by_alias("tweet-engagement", "champion").version) == "1"
    assert registry.history(client, "tweet-engagement")[-1].action == "rollback"
    again = _tweetops(project, "registry", "rollback")
    assert again.returncode == 2 and "no previous champion" in again.stderr

    # promoting the same training run again reuses its version, and it wins back the alias
    repeat = promote(better)
    assert (repeat.version, repeat.newly_registered, repeat.champion_after) == ("3", False, "3")
    assert len(client.search_model_versions("name = 'tweet-engagement'")) == 3
    assert [m.to_version for m in registry.history(client, "tweet-engagement")] == [
        "1",
        "3",
        "1",
        "3",
    ]
    described = client.get_model_version("tweet-engagement", "3").description
    assert trained_better.run_id in described and "DVC md5" in described
    assert "lang" in client.get_registered_model("tweet-engagement").description


def test_a_champion_without_split_settings_is_replaced_only_by_force(
    trained_project: TrainedProject,
) -> None:
    project = trained_project
    settings = project.settings("train.num_trees=3", "train.max_depth=3")
    train(settings)
    promote(settings)
    client = MlflowClient()
    # a champion registered by hand from a folder: no split tags, no training run to read them
    folder = mlflow.artifacts.download_artifacts(
        "models:/tweet-engagement/1", dst_path=str(project.root / "by-hand")
    )
    manual = client.create_model_version("tweet-engagement", source=folder)
    assert not manual.run_id
    registry.move_champion(client, "tweet-engagement", manual.version, action="promote", reason="x")

    better = project.settings("train.num_trees=30", "train.max_depth=8")
    train(better)
    with pytest.raises(TweetopsError, match=r"promote with -S force=true to compare on the chall"):
        promote(better)
    assert registry.champion_version(client, "tweet-engagement") == str(manual.version)

    forced = promote(
        project.settings("train.num_trees=30", "train.max_depth=8", "promote.force=true")
    )
    assert forced.promoted and forced.champion_after == forced.version
    assert f"champion v{manual.version}'s split is unknown" in forced.reason
    assert split_of(client, "tweet-engagement", manual.version) is None


def _tweetops(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tweetops", *args],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_promote_refuses_a_deleted_training_run_in_one_sentence(project: Project) -> None:
    from tweetops.contracts import SplitSpec, TrainedModel, write_contract

    settings = project.settings()
    mlflow.set_experiment("tweetops")
    with mlflow.start_run(run_name="train") as run:
        run_id = run.info.run_id
    write_contract(
        settings.promote.run_file,
        TrainedModel(
            run_id=run_id,
            model_uri=f"runs:/{run_id}/model",
            metrics={},
            train_rows=0,
            test_rows=0,
            split=SplitSpec(
                seed=42,
                test_fraction=0.2,
                split_partitions=4,
                training_rows_dir="data/features/training",
            ),
        ),
    )
    client = MlflowClient()
    client.delete_run(run_id)
    with pytest.raises(TweetopsError, match=f"Training run {run_id} is deleted: restore it"):
        promote(settings)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "gc",
            "--backend-store-uri",
            project.tracking_uri,
            "--run-ids",
            run_id,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    with pytest.raises(TweetopsError, match="no longer exists in the tracking store"):
        promote(settings)
    experiment = client.get_experiment_by_name("tweetops")
    assert not client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")


def test_promote_without_a_training_run_says_what_to_do(project: Project) -> None:

    with pytest.raises(TweetopsError, match="run `tweetops train` first"):
        promote(project.settings())


@pytest.mark.slow
def test_train_promote_predict_through_a_real_mlflow_server(
    featured_project: FeaturedProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = featured_project
    # ingest and features ran into the project's own store; what this test logs must not
    local_artifacts = project.root / "mlruns"
    local_before = sorted(local_artifacts.rglob("*"))
    with mlflow_server(tmp_path / "server") as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        settings = project.settings("predict.output_path=data/predictions")
        trained = train(settings)
        promotion = promote(settings)
        scored = predict(settings)

        client = MlflowClient(uri)
        assert client.get_run(trained.run_id).data.metrics["r2"] == pytest.approx(
            trained.metrics["r2"]
        )
        champion = client.get_model_version_by_alias("tweet-engagement", "champion")
        assert str(champion.version) == promotion.version == "1"
        assert scored.rows == trained.train_rows + trained.test_rows
        assert scored.rmse is not None and scored.rmse < trained.metrics["baseline_rmse"]
        output = pd.read_parquet(settings.predict.output_path)
        assert len(output) == scored.rows
        assert set(
            output[["model_name", "model_version", "model_alias"]].itertuples(
                index=False, name=None
            )
        ) == {("tweet-engagement", "1", "champion")}
        # the batch scores are the served model's scores
        rows = pd.read_parquet(settings.train.training_rows_dir).set_index("tweet_id")
        served = mlflow.pyfunc.load_model("models:/tweet-engagement@champion")
        expected = served.predict(rows[list(MODEL_INPUT_COLUMNS)])
        by_id = output.set_index("tweet_id")["prediction"].reindex(rows.index)
        assert np.max(np.abs(by_id.to_numpy() - np.asarray(expected))) < 1e-9

        # JSONL in, a pinned version: the same scores for the same rows
        jsonl = project.root / "some.jsonl"
        rows.head(40).reset_index().to_json(jsonl, orient="records", lines=True)
        pinned = predict(
            project.settings(
                f"predict.input_path={jsonl}",
                "predict.output_path=data/pinned",
                "predict.model_uri=models:/tweet-engagement/1",
            )
        )
        from_jsonl = pd.read_parquet(project.root / "data" / "pinned")
        assert pinned.rows == 40 and set(from_jsonl["model_version"]) == {"1"}
        assert from_jsonl["model_alias"].isna().all()
        assert np.allclose(
            from_jsonl.set_index("tweet_id")["prediction"],
            by_id.loc[from_jsonl["tweet_id"]].to_numpy(),
            atol=1e-9,
        )
        # the artifacts went through the server, not to a local mlruns folder
        assert any((tmp_path / "server" / "server-artifacts").rglob("MLmodel"))
        assert sorted(local_artifacts.rglob("*")) == local_before
