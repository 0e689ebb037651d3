"""What a person reads: the whole chain in a pipe prints a few lines, all of them the product's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import copy_project, user_env

RUN_ID = r"[0-9a-f]{32}"
DURATION = r"(\d+\.\d s|\d+ min \d\d s)"
DONE = rf"\[done in {DURATION}(; wrote [^\]]+)?\]"
# every line the chain may print at the default verbosity, start to end
PRODUCT_LINES = (
    rf"main: started, MLflow run {RUN_ID}",
    rf"(ingest|features|train|promote): started, MLflow run {RUN_ID}",
    rf"(features|train|promote): \d+/\d+ tasks, \d+ Spark stages \({DURATION}\)",
    rf"ingest\[synthetic\]: \d+ accepted, \d+ quarantined, \d+ duplicate \(.*\) {DONE}",
    r"features: batch \d+: \d+ rows in .* -> \d+ accepted, .*",
    rf"features: \d+ raw rows in \d+ micro-batches -> .* {DONE}",
    rf"train: rmse \d+\.\d+ \(baseline \d+\.\d+\), r2 .* run {RUN_ID} {DONE}",
    rf"promote: tweet-engagement v\d+ .* {DONE}",
    rf"main: done in {DURATION}, MLflow run {RUN_ID}",
)


@pytest.mark.slow
def test_the_chain_in_a_pipe_prints_at_most_16_lines_all_of_them_the_products(
    tmp_path: Path,
) -> None:
    project = copy_project(tmp_path / "clone")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tweetops",
            "main",
            "-S",
            "ingest.n_tweets=600",
            "-S",
            "train.num_trees=10",
            "-S",
            "spark.ui_enabled=false",
        ],
        cwd=project,
        env=user_env(MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, as a CI log shows it
        text=True,
        timeout=1800,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout[-6000:]
    assert "\r" not in done.stdout  # no bar redrawn in a pipe
    foreign = [line for line in lines if not any(re.fullmatch(p, line) for p in PRODUCT_LINES)]
    assert foreign == []
    assert len(lines) <= 16, "\n".join(lines)
    # every step says when it starts and when it ends
    for step in ("main", "ingest", "features", "train", "promote"):
        assert any(line.startswith(f"{step}: started, MLflow run ") for line in lines), step
    assert sum("[done in " in line for line in lines) == 4
    assert lines[-1].startswith("main: done in ")
