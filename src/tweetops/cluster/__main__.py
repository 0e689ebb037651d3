"""`python -m tweetops.cluster up|down`: what the Makefile's cluster targets run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tweetops.cluster.stack import ClusterPorts, cluster_down, cluster_up, exports
from tweetops.errors import TweetopsError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
Folder = Annotated[Path, typer.Option("--dir", help="Where the cluster keeps its state.")]


@app.command()
def up(
    folder: Folder = Path(".cluster"),
    postgres_port: Annotated[int, typer.Option()] = 15432,
    mlflow_port: Annotated[int, typer.Option()] = 15000,
    spark_port: Annotated[int, typer.Option()] = 17077,
    spark_ui_port: Annotated[int, typer.Option()] = 18080,
    worker_ui_port: Annotated[
        int, typer.Option(help="The first worker's; the next is +1.")
    ] = 18081,
) -> None:
    """Start PostgreSQL, the MLflow server and the Spark cluster; print the `export` lines."""
    ports = ClusterPorts(postgres_port, mlflow_port, spark_port, spark_ui_port, worker_ui_port)
    try:
        cluster_up(folder, ports)
    except TweetopsError as exc:
        typer.echo(f"cluster-up: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(exports(folder))


@app.command()
def down(folder: Folder = Path(".cluster")) -> None:
    """Stop every process `up` started, from its pid files."""
    try:
        stopped = cluster_down(folder)
    except TweetopsError as exc:
        typer.echo(f"cluster-down: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"cluster-down: stopped {', '.join(stopped) or 'nothing (nothing was running)'}")


if __name__ == "__main__":
    app(prog_name=f"{Path(sys.executable).name} -m tweetops.cluster")
