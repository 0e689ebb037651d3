"""`tweetops <step>`: parses options, loads settings, calls the step. Nothing else lives here."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tweetops.errors import TweetopsError
from tweetops.settings import DEFAULT_PARAMS_FILE, Settings, load_settings

app = typer.Typer(
    help="tweetops: tweets to a served engagement model. Settings come from params.yaml; "
         "override any of them for one run with -S section.key=value.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", "-S", metavar="SECTION.KEY=VALUE",
                 help="Override a setting of params.yaml for this run (repeatable). A bare "
                      "KEY=VALUE belongs to this step's section; an empty value keeps "
                      "params.yaml."),
]
ParamsFile = Annotated[
    Path, typer.Option("--params", help="The params.yaml to read.", dir_okay=False),
]


def _run(section: str | None, params: Path, overrides: list[str] | None,
         step: Callable[[Settings], Any], *, needs_spark: bool = True) -> None:
    try:
        settings = load_settings(params, overrides or [], default_section=section)
        if needs_spark:
            from tweetops.spark import check_java

            # before any MLflow run opens: no failed run is left behind for a missing JDK
            check_java()
        step(settings)
    except TweetopsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


@app.command("ingest")
def ingest_command(overrides: Overrides = None, params: ParamsFile = DEFAULT_PARAMS_FILE) -> None:
    """Land tweets (synthetic, search, stream or replay) as a JSONL snapshot under data/raw."""
    from tweetops.ingest import ingest

    _run("ingest", params, overrides, ingest, needs_spark=False)


@app.command("features")
def features_command(overrides: Overrides = None,
                     params: ParamsFile = DEFAULT_PARAMS_FILE) -> None:
    """Stream the snapshot through Spark into per-user and per-tweet feature tables."""
    from tweetops.features import build_features

    _run("features", params, overrides, build_features)


@app.command("train")
def train_command(overrides: Overrides = None, params: ParamsFile = DEFAULT_PARAMS_FILE) -> None:
    """Fit the Spark ML pipeline and log params, metrics, artifacts and model to MLflow."""
    from tweetops.train import train

    _run("train", params, overrides, train)


@app.command("tune")
def tune_command(overrides: Overrides = None, params: ParamsFile = DEFAULT_PARAMS_FILE) -> None:
    """Search RandomForest hyperparameters with Hyperopt; one nested MLflow run per trial."""
    from tweetops.tune import tune

    _run("tune", params, overrides, tune)


@app.command("promote")
def promote_command(overrides: Overrides = None,
                    params: ParamsFile = DEFAULT_PARAMS_FILE) -> None:
    """Register the trained model; alias challenger, and champion when it wins."""
    from tweetops.registry import promote

    _run("registry", params, overrides, promote)


@app.command("predict")
def predict_command(overrides: Overrides = None,
                    params: ParamsFile = DEFAULT_PARAMS_FILE) -> None:
    """Batch-score a Parquet table with a registered model (the champion by default)."""
    from tweetops.predict import predict

    _run("predict", params, overrides, predict)


@app.command("main")
def main_command(overrides: Overrides = None, params: ParamsFile = DEFAULT_PARAMS_FILE) -> None:
    """Run ingest -> features -> train -> promote as one parent MLflow run."""
    from tweetops.pipeline import run_main

    _run(None, params, overrides, run_main)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
