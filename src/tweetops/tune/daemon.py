"""Spark's Python daemon with the trial libraries already imported.

Spark forks every Python worker from one daemon process per executor. Hyperopt's SparkTrials
never reads its task's input, so Spark does not reuse the worker: each trial is a fresh fork
that would import hyperopt, scikit-learn, MLflow's client (the trial's nested run) and tweetops
again (about 1.5 s of CPU, more than a typical trial's fit). Importing them here, once, before
the daemon forks, gives every worker those modules for free. `build_spark` selects this module
(`spark.python.daemon.module`) for local masters; on a cluster whose executors have tweetops
installed, set it in `spark.conf`.
"""

import contextlib
import sys

# the daemon tells the JVM its port on stdout: nothing imported may print there
with contextlib.redirect_stdout(sys.stderr):
    import mlflow.tracking  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    from tweetops.tune import sklearn_trials, trial_runs  # noqa: F401

from pyspark.daemon import manager

if __name__ == "__main__":
    manager()
