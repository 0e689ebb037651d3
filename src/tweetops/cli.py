"""`tweetops <step>`: parses options, loads settings, calls the step. Nothing else lives here."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tweetops.errors import ACCESS_ERROR_CODES, Interrupted, TweetopsError, access_refused
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
    typer.Option(
        "--set",
        "-S",
        metavar="SECTION.KEY=VALUE",
        help="Override a setting of params.yaml for this run (repeatable). A bare "
        "KEY=VALUE belongs to this step's section; an empty value keeps "
        "params.yaml.",
    ),
]
ParamsFile = Annotated[
    Path,
    typer.Option("--params", help="The params.yaml to read.", dir_okay=False),
]
Verbose = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        help="Say more: debug messages of tweetops, info of MLflow and Spark.",
    ),
]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Only warnings and errors."),
]
# `mlflow run -P key=value` appends every key its entry point does not declare as
# `--key value`: step commands accept such options and turn them into overrides
STEP_COMMAND = {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True}}


def extra_overrides(args: list[str], section: str | None) -> list[str]:
    """`--key value` / `--section.key value` / `--key=value` as `section.key=value` overrides.

    A bare key belongs to `section` (the step being run); for `main`, to the one section of
    params.yaml that has it.
    """
    overrides: list[str] = []
    tokens = iter(args)
    for token in tokens:
        if not token.startswith("--") or len(token) < 3:
            raise TweetopsError(
                f"Unexpected argument {token!r}: settings are -S section.key=value "
                f"or --section.key value."
            )
        name, sep, value = token[2:].partition("=")
        if not sep:
            value = next(tokens, None)
            if value is None:
                raise TweetopsError(f"Option {token} needs a value, e.g. {token} 10.")
        name = name.replace("-", "_")
        if "." not in name:
            name = f"{section or _section_of(name)}.{name}"
        overrides.append(f"{name}={value}")
    return overrides


def _section_of(key: str) -> str:
    sections = [
        name
        for name, field in Settings.model_fields.items()
        if key in getattr(field.annotation, "model_fields", {})
    ]
    if not sections:
        raise TweetopsError(f"Setting {key} is unknown; check its spelling against params.yaml.")
    if len(sections) > 1:
        raise TweetopsError(
            f"Setting {key} is in sections {', '.join(sections)}: name one, "
            f"e.g. -P {sections[0]}.{key}=..."
        )
    return sections[0]


def _run(
    section: str | None,
    params: Path,
    overrides: list[str] | None,
    step: Callable[[Settings], Any],
    *,
    verbose: int = 0,
    quiet: bool = False,
    needs_spark: bool = True,
    extra_args: list[str] | None = None,
) -> None:
    # after the step's module was imported: MLflow sets its own log levels when it is imported
    configure_logging(-1 if quiet else verbose)
    settings: Settings | None = None
    try:
        extra = extra_overrides(extra_args or [], section)
        settings = load_settings(params, [*(overrides or []), *extra], default_section=section)
        if needs_spark:
            from tweetops.spark import check_java

            # before any MLflow run opens: no failed run is left behind for a missing JDK
            check_java()
        step(settings)
    except TweetopsError as exc:
        logging.getLogger("tweetops").error("error: %s", exc)
        raise typer.Exit(code=2) from None
    except Interrupted as exc:  # a signal before the step's run opened: nothing to mark KILLED
        logging.getLogger("tweetops").error(
            "error: stopped by %s; run the step again.", signal.Signals(exc.signum).name
        )
        raise typer.Exit(code=128 + exc.signum) from None
    except Exception as exc:
        refusal = _explained_failure(exc, settings)
        if refusal is None:
            raise
        logging.getLogger("tweetops").error("error: %s", refusal)
        raise typer.Exit(code=2) from None


def _explained_failure(exc: Exception, settings: Settings | None) -> TweetopsError | None:
    """The one sentence for a failure the user can fix that surfaced as a library error."""
    # a tracking server with authentication refusing the step's own run (401/403)
    code = getattr(exc, "error_code", None)
    if code in ACCESS_ERROR_CODES:
        return access_refused("this command's MLflow calls", code)
    if settings is None:
        return None
    # a Spark failure a cluster's storage explains
    from tweetops.spark import cluster_storage_error

    return cluster_storage_error(exc, settings.spark.master)


@app.command("ingest", **STEP_COMMAND)
def ingest_command(
    ctx: typer.Context,
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Land tweets (synthetic, search, stream or replay) as a JSONL snapshot under data/raw."""
    from tweetops.ingest.step import ingest

    _run(
        "ingest",
        params,
        overrides,
        ingest,
        verbose=verbose,
        quiet=quiet,
        extra_args=ctx.args,
        needs_spark=False,
    )


@app.command("features", **STEP_COMMAND)
def features_command(
    ctx: typer.Context,
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Stream the snapshot through Spark into per-user and per-tweet feature tables."""
    from tweetops.features import build_features

    _run(
        "features",
        params,
        overrides,
        build_features,
        verbose=verbose,
        quiet=quiet,
        extra_args=ctx.args,
    )


@app.command("train", **STEP_COMMAND)
def train_command(
    ctx: typer.Context,
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Fit the Spark ML pipeline and log params, metrics, artifacts and model to MLflow."""
    from tweetops.train import train

    _run("train", params, overrides, train, verbose=verbose, quiet=quiet, extra_args=ctx.args)


@app.command("tune", **STEP_COMMAND)
def tune_command(
    ctx: typer.Context,
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Search RandomForest hyperparameters with Hyperopt; one nested MLflow run per trial."""
    from tweetops.tune.step import tune

    _run("tune", params, overrides, tune, verbose=verbose, quiet=quiet, extra_args=ctx.args)


@app.command("promote", **STEP_COMMAND)
def promote_command(
    ctx: typer.Context,
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Register the trained model; alias challenger, and champion when it wins."""
    from tweetops.promote import promote

    _run("promote", params, overrides, promote, verbose=verbose, quiet=quiet, extra_args=ctx.args)


@app.command("predict", **STEP_COMMAND)
def predict_command(
    ctx: typer.Context,
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Batch-score Parquet or JSONL rows with a registered model (the champion by default).

    \b
    Settings (params.yaml, section predict; override with -S key=value):
      model_uri    models:/<name>@<alias> or models:/<name>/<version>
                   (default models:/tweet-engagement@champion)
      input_path   Parquet folder or file, or .jsonl, with the model's input
                   columns (default: the features' training table)
      output_path  Parquet folder written: tweet_id and engagement when the
                   input has them, prediction, model_name, model_version,
                   model_alias (default data/predictions)
    Example: tweetops predict -S input_path=new.parquet -S output_path=data/scored
    """
    from tweetops.predict import predict

    _run("predict", params, overrides, predict, verbose=verbose, quiet=quiet, extra_args=ctx.args)


registry_app = typer.Typer(
    help="The registered model's champion history, and rollback. Reads promote.model_name.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")


@registry_app.command("history")
def registry_history_command(
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Print every move of the champion alias: when, from which version to which, why, scores."""
    from tweetops.registry import show_history

    _run(
        "promote", params, overrides, show_history, verbose=verbose, quiet=quiet, needs_spark=False
    )


@registry_app.command("rollback")
def registry_rollback_command(
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Move the champion alias back to the previous champion, and record the move."""
    from tweetops.registry import rollback_champion

    _run(
        "promote",
        params,
        overrides,
        rollback_champion,
        verbose=verbose,
        quiet=quiet,
        needs_spark=False,
    )


@app.command("reproduce", **STEP_COMMAND)
def reproduce_command(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Argument(help="The id of the train run to reproduce.")
    ] = None,
    run_id_option: Annotated[
        str | None, typer.Option("--run_id", "--run-id", help="The same, as an option.")
    ] = None,
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Re-run a train run from its lineage (params, DVC data, commit); compare its metrics."""
    from tweetops.reproduce import reproduce

    chosen = run_id or run_id_option
    extra = [*(overrides or []), *extra_overrides(ctx.args, None)]

    def step(_settings: Settings) -> Any:
        if not chosen:
            raise TweetopsError("Name the train run to reproduce: tweetops reproduce RUN_ID.")
        return reproduce(chosen, params, extra)

    _run(None, params, extra, step, verbose=verbose, quiet=quiet)


@app.command("main", **STEP_COMMAND)
def main_command(
    ctx: typer.Context,
    overrides: Overrides = None,
    params: ParamsFile = DEFAULT_PARAMS_FILE,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Run ingest -> features -> [tune ->] train -> promote as one parent MLflow run."""
    from tweetops.pipeline import run_main

    _run(None, params, overrides, run_main, verbose=verbose, quiet=quiet, extra_args=ctx.args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
