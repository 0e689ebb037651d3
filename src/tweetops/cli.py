"""`tweetops <step>`: parses options, loads settings, calls the step. Nothing else lives here."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from tweetops.errors import ACCESS_ERROR_CODES, Interrupted, TweetopsError, access_refused
from tweetops.logs import configure_logging
from tweetops.settings import DEFAULT_PARAMS_FILE, Settings, load_settings

app = typer.Typer(
    help="tweetops: tweets to a served engagement model. Settings come from params.yaml and "
    "plumbing.yaml; override any of them for one run with -S section.key=value.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-S",
        metavar="SECTION.KEY=VALUE",
        help="Override a setting of params.yaml or plumbing.yaml for this run (repeatable). A "
        "bare KEY=VALUE belongs to this step's section; an empty value keeps the file's.",
    ),
]
ParamsFile = Annotated[
    Path,
    typer.Option(
        "--params",
        help="The params.yaml to read (with the plumbing.yaml beside it).",
        dir_okay=False,
    ),
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
STEP_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def extra_overrides(args: list[str], section: str | None) -> list[str]:
    """`--key value` / `--section.key value` / `--key=value` as `section.key=value` overrides.

    A bare key belongs to `section` (the step being run); for `main`, to the one section of
    the settings that has it.
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
            following = next(tokens, None)
            if following is None:
                raise TweetopsError(f"Option {token} needs a value, e.g. {token} 10.")
            value = following
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
        raise TweetopsError(
            f"Setting {key} is unknown; check its spelling against params.yaml and plumbing.yaml."
        )
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


@dataclass(frozen=True)
class StepCommand:
    """One `tweetops <name>` step command: the function it runs and the section it reads."""

    name: str
    module: str
    function: str
    help: str
    section: str | None  # where a bare KEY=VALUE belongs (None: `main` looks the key up)
    needs_spark: bool = True


STEP_COMMANDS = (
    StepCommand(
        "ingest",
        "tweetops.ingest.step",
        "ingest",
        "Land tweets (synthetic, search, stream or replay) as a JSONL snapshot under data/raw.",
        "ingest",
        needs_spark=False,
    ),
    StepCommand(
        "features",
        "tweetops.features",
        "build_features",
        "Stream the snapshot through Spark into per-user and per-tweet feature tables.",
        "features",
    ),
    StepCommand(
        "train",
        "tweetops.train",
        "train",
        "Fit the Spark ML pipeline and log params, metrics, artifacts and model to MLflow.",
        "train",
    ),
    StepCommand(
        "tune",
        "tweetops.tune.step",
        "tune",
        "Search RandomForest hyperparameters with Hyperopt; one nested MLflow run per trial.",
        "tune",
    ),
    StepCommand(
        "promote",
        "tweetops.promote",
        "promote",
        "Register the trained model; alias challenger, and champion when it wins.",
        "promote",
    ),
    StepCommand(
        "predict",
        "tweetops.predict",
        "predict",
        """Batch-score Parquet or JSONL rows with a registered model (the champion by default).

    \b
    Settings (plumbing.yaml, section predict; override with -S key=value):
      model_uri    models:/<name>@<alias> or models:/<name>/<version>
                   (default models:/tweet-engagement@champion)
      input_path   Parquet folder or file, or .jsonl, with the model's input
                   columns (default: the features' training table)
      output_path  Parquet folder written: tweet_id and engagement when the
                   input has them, prediction, model_name, model_version,
                   model_alias (default data/predictions)
    Example: tweetops predict -S input_path=new.parquet -S output_path=data/scored
    """,
        "predict",
    ),
    StepCommand(
        "main",
        "tweetops.pipeline",
        "run_main",
        "Run ingest -> features -> [tune ->] train -> promote as one parent MLflow run.",
        None,
    ),
)


def _step_command(command: StepCommand) -> Callable[..., None]:
    """The typer callback of `command`: imports its step only when it runs."""

    def run_command(
        ctx: typer.Context,
        overrides: Overrides = None,
        params: ParamsFile = DEFAULT_PARAMS_FILE,
        verbose: Verbose = 0,
        quiet: Quiet = False,
    ) -> None:
        step = getattr(importlib.import_module(command.module), command.function)
        _run(
            command.section,
            params,
            overrides,
            step,
            verbose=verbose,
            quiet=quiet,
            needs_spark=command.needs_spark,
            extra_args=ctx.args,
        )

    return run_command


for _command in STEP_COMMANDS:
    app.command(_command.name, help=_command.help, context_settings=STEP_CONTEXT)(
        _step_command(_command)
    )


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


@app.command("reproduce", context_settings=STEP_CONTEXT)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
