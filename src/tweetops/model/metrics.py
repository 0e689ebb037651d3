"""rmse, mae and r2 of predictions already in numpy arrays, as Spark's RegressionEvaluator
computes them: the tune trials and the promotion gate score pandas predictions with these."""

from __future__ import annotations

import numpy as np


def rmse(actual: np.ndarray, predicted: np.ndarray | float) -> float:
    """Root mean squared error; NaN for no rows (there is nothing to score)."""
    if len(actual) == 0:
        return float("nan")
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """rmse, mae and r2, as Spark's RegressionEvaluator computes them."""
    errors = predicted - actual
    total = float(np.sum((actual - actual.mean()) ** 2))
    return {
        "rmse": rmse(actual, predicted),
        "mae": float(np.mean(np.abs(errors))),
        "r2": 1.0 - float(np.sum(errors**2)) / total if total > 0 else 0.0,
    }
