"""Promote as two processes at once: one lock, one version per training run, a true report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TEST_SPARK_OVERRIDES, TrainedProject
from tweetops import registry
from tweetops.train import train

pytestmark = pytest.mark.slow


def test_two_promotes_at_once_leave_the_better_model_champion(
    trained_project: TrainedProject,
) -> None:
    project = trained_project
    # the small project's model (20 trees, depth 8) is the strong one; a weak one beside it
    strong = project.trained
    weak = train(
        project.settings(
            "train.num_trees=2", "train.max_depth=2", "train.run_file=reports/weak.json"
        )
    )
    assert strong.metrics["rmse"] < weak.metrics["rmse"]
    run_files = {"weak": "reports/weak.json", "strong": str(project.settings().train.run_file)}

    def start(name: str) -> subprocess.Popen:
        overrides = [f"-S{item}" for item in TEST_SPARK_OVERRIDES]
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tweetops",
                "promote",
                *overrides,
                f"-Spromote.run_file={run_files[name]}",
                f"-Spromote.promotion_file=reports/promotion-{name}.json",
            ],
            cwd=project.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    processes = {name: start(name) for name in ("weak", "strong")}
    outputs = {name: process.communicate(timeout=600) for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, outputs[name][1][-3000:]

    client = MlflowClient()
    versions = {
        version.run_id: str(version.version)
        for version in client.search_model_versions("name = 'tweet-engagement'")
    }
    assert set(versions) == {weak.run_id, strong.run_id}  # one version per training run
    champion = registry.champion_version(client, "tweet-engagement")
    assert champion == versions[strong.run_id]

    reports = {
        name: json.loads((project.root / "reports" / f"promotion-{name}.json").read_text())
        for name in processes
    }
    for name, report in reports.items():
        assert report["version"] == versions[(weak if name == "weak" else strong).run_id]
    # the lock ran them one after the other: the second compared with what the first left
    first, second = sorted(
        reports.values(), key=lambda report: report["champion_version"] is not None
    )
    assert first["champion_version"] is None
    assert second["champion_version"] == first["champion_after"]
    assert second["champion_after"] == champion
    # what each process printed is what its report says the registry held
    for name, report in reports.items():
        after = report["champion_after"]
        said = "now champion" if after == report["version"] else f"champion is v{after}"
        assert said in outputs[name][0], outputs[name]
    moves = registry.history(client, "tweet-engagement")
    assert moves[-1].to_version == champion
