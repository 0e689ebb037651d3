"""`tweetops <step>`: parses options, loads settings, calls the step. Nothing else lives here."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tweetops.errors import TweetopsError
from tweetops.logs import configure_logging
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
Verbose = Annotated[
    int, typer.Option("--verbose", "-v", count=True,
                      help="Say more: debug messages of tweetops, info of MLflow and Spark."),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only warnings and errors."),
]


def _run(section: str | None, params: Path, overrides: list[str] | None,
         step: Callable[[Settings], Any], *, verbose: int = 0, quiet: bool = False,
         needs_spark: bool = True) -> None:
    # after the step's module was imported: MLflow sets its own log levels when it is imported
    configure_logging(-1 if quiet else verbose)
    try:
        settings = load_settings(params, overrides or [], default_section=section)
        if needs_spark:
            from tweetops.spark import check_java

            # before any MLflow run opens: no failed run is left behind for a missing JDK
            check_java()
        step(settings)
    except TweetopsError as exc:
        logging.getLogger("tweetops").error("error: %s", exc)
        raise typer.Exit(code=2) from None


@app.command("ingest")
def ingest_command(overrides: Overrides = None,
                   params: ParamsFile = DEFAULT_PARAMS_FILE,
                   verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Land tweets (synthetic, search, stream or replay) as a JSONL snapshot under data/raw."""
    from tweetops.ingest.step import ingest

    _run("ingest", params, overrides, ingest, verbose=verbose, quiet=quiet, needs_spark=False)


@app.command("features")
def features_command(overrides: Overrides = None,
                     params: ParamsFile = DEFAULT_PARAMS_FILE,
                     verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Stream the snapshot through Spark into per-user and per-tweet feature tables."""
    from tweetops.features import build_features

    _run("features", params, overrides, build_features, verbose=verbose, quiet=quiet)


@app.command("train")
def train_command(overrides: Overrides = None,
                  params: ParamsFile = DEFAULT_PARAMS_FILE,
                  verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Fit the Spark ML pipeline and log params, metrics, artifacts and model to MLflow."""
    from tweetops.train import train

    _run("train", params, overrides, train, verbose=verbose, quiet=quiet)


@app.command("tune")
def tune_command(overrides: Overrides = None,
                 params: ParamsFile = DEFAULT_PARAMS_FILE,
                 verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Search RandomForest hyperparameters with Hyperopt; one nested MLflow run per trial."""
    from tweetops.tune import tune

    _run("tune", params, overrides, tune, verbose=verbose, quiet=quiet)


@app.command("promote")
def promote_command(overrides: Overrides = None,
                    params: ParamsFile = DEFAULT_PARAMS_FILE,
                    verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Register the trained model; alias challenger, and champion when it wins."""
    from tweetops.promote import promote

    _run("promote", params, overrides, promote, verbose=verbose, quiet=quiet)


@app.command("predict")
def predict_command(overrides: Overrides = None,
                    params: ParamsFile = DEFAULT_PARAMS_FILE,
                    verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Batch-score a Parquet table with a registered model (the champion by default)."""
    from tweetops.predict import predict

    _run("predict", params, overrides, predict, verbose=verbose, quiet=quiet)


registry_app = typer.Typer(
    help="The registered model's champion history, and rollback. Reads promote.model_name.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")


@registry_app.command("history")
def registry_history_command(overrides: Overrides = None,
                             params: ParamsFile = DEFAULT_PARAMS_FILE,
                             verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Print every move of the champion alias: when, from which version to which, why, scores."""
    from tweetops.registry import show_history

    _run("promote", params, overrides, show_history, verbose=verbose, quiet=quiet,
         needs_spark=False)


@registry_app.command("rollback")
def registry_rollback_command(overrides: Overrides = None,
                              params: ParamsFile = DEFAULT_PARAMS_FILE,
                              verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Move the champion alias back to the previous champion, and record the move."""
    from tweetops.registry import rollback_champion

    _run("promote", params, overrides, rollback_champion, verbose=verbose, quiet=quiet,
         needs_spark=False)


@app.command("main")
def main_command(overrides: Overrides = None,
                 params: ParamsFile = DEFAULT_PARAMS_FILE,
                 verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Run ingest -> features -> train -> promote as one parent MLflow run."""
    from tweetops.pipeline import run_main

    _run(None, params, overrides, run_main, verbose=verbose, quiet=quiet)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
