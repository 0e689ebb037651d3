"""One way to talk to the user: the `tweetops` logger, configured once by the CLI.

Steps and sources log through `logging.getLogger(__name__)`; the CLI calls
:func:`configure_logging` with the verbosity of `-v`/`-q`. Messages of tweetops go to stdout
(summary lines are the steps' output), warnings and errors to stderr. At the default verbosity
the libraries say nothing below ERROR: MLflow's own messages and prints (its event stream, its
artifact download bars), Hyperopt's, Spark's (see :mod:`tweetops.spark`); `-v` shows them all.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

NOISY_LIBRARIES = (
    "mlflow",
    "py4j",
    "pyspark",
    "urllib3",
    "requests",
    "tweepy",
    "alembic",
    "sqlalchemy",
    "dvc",
    "hyperopt",
    "hyperopt-spark",  # Hyperopt's SparkTrials logger, not a child of "hyperopt"
    "git",
    "filelock",
    "matplotlib",
)
_HANDLER_NAME = "tweetops-console"
# MLflow reads it whenever it downloads artifacts: its tqdm bars are one long line in a pipe
MLFLOW_PROGRESS_BARS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class _StdStream(logging.StreamHandler[TextIO]):
    """A handler that writes to the current sys.stdout or sys.stderr, looked up per record.

    Looking the stream up at emit time keeps it right when a caller (pytest, a notebook)
    swaps sys.stdout after logging was configured.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self._stream_name = name

    @property
    def stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self._stream_name)
        return stream

    @stream.setter
    def stream(self, _value: object) -> None:  # the base class assigns it once
        return


def configure_logging(verbosity: int = 0) -> None:
    """Set up console logging: `verbosity` 0 is normal, 1 (`-v`) is debug, -1 (`-q`) quiet.

    Idempotent: calling it again replaces the handlers it installed before.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if (h.get_name() or "").startswith(_HANDLER_NAME)]:
        root.removeHandler(handler)
    out = _StdStream("stdout")
    out.set_name(f"{_HANDLER_NAME}-out")
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = _StdStream("stderr")
    err.set_name(f"{_HANDLER_NAME}-err")
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    ours = {1: logging.DEBUG, 0: logging.INFO}.get(max(min(verbosity, 1), -1), logging.WARNING)
    logging.getLogger("tweetops").setLevel(ours)
    library_level = logging.INFO if verbosity > 0 else logging.ERROR
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
    # py4j logs, with its traceback, each error a Python callback (a foreachBatch) raises; the
    # same error then reaches the step, which explains it in one sentence
    logging.getLogger("py4j.clientserver").setLevel(
        library_level if verbosity > 0 else logging.CRITICAL
    )
    # MLflow prints some messages past logging ("Successfully registered model ...")
    from mlflow.utils import logging_utils as mlflow_logging

    mlflow_logging.MLFLOW_LOGGING_STREAM.enabled = verbosity > 0  # what disable_logging() sets
    if verbosity <= 0:
        os.environ[MLFLOW_PROGRESS_BARS_ENV] = "false"


def is_verbose() -> bool:
    """True under `-v`: libraries (Spark's JVM included) show everything they log."""
    return logging.getLogger("tweetops").isEnabledFor(logging.DEBUG)
