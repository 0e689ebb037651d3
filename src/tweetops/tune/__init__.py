"""Tune: a Hyperopt search over the forest's hyperparameters.

:mod:`.step` is the search (both backends) and the step with its Spark ML refit;
:mod:`.sklearn_trials` fits one scikit-learn forest per trial; :mod:`.trial_runs` records each
trial as a nested MLflow run, also from Spark workers; :mod:`.daemon` is Spark's Python daemon with
those modules imported before it forks workers.

This package file imports nothing: the daemon imports its submodules without loading the step.
"""
