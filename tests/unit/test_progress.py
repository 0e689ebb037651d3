"""Progress in a pipe: a line after 30 s, then ever less often; a Hyperopt trial counter."""

from __future__ import annotations

import logging

import pytest

from tweetops import progress
from tweetops.progress import Progress, format_duration, trial_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_in_a_pipe_progress_logs_after_30_s_then_with_doubling_waits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    monkeypatch.setattr(progress, "on_terminal", lambda: False)  # a pipe, even under `pytest -s`
    with caplog.at_level(logging.INFO, logger="tweetops"):
        bar = Progress("train", "tasks")
        for second in range(0, 200):
            clock.now = 1000.0 + second
            bar.update(second, 400, "3 Spark stages")
        bar.close()
    # lines at 30 s, 90 s (30 + 60) and 210 s would be the third: only two in 200 s
    assert caplog.messages == [
        "train: 30/400 tasks, 3 Spark stages (30.0 s)",
        "train: 90/400 tasks, 3 Spark stages (1 min 30 s)",
    ]


def test_trial_progress_counts_trials_and_shows_the_best_rmse(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    monkeypatch.setattr(progress, "on_terminal", lambda: False)  # a pipe, even under `pytest -s`
    best: list[float] = []
    callback = trial_progress("tune", lambda: min(best) if best else None)
    with caplog.at_level(logging.INFO, logger="tweetops"), callback(initial=0, total=12) as ctx:
        for trial, loss in enumerate([0.9, 0.7, 0.8], start=1):
            best.append(loss)
            clock.now = 1000.0 + 31 * trial * trial  # past every doubling wait
            ctx.update(1)
            ctx.postfix = "best loss: ignored"
    assert caplog.messages == [
        "tune: 1/12 trials, best rmse 0.9000 (31.0 s)",
        "tune: 2/12 trials, best rmse 0.7000 (2 min 04 s)",
        "tune: 3/12 trials, best rmse 0.7000 (4 min 39 s)",
    ]


def test_durations_read_as_seconds_or_minutes() -> None:
    assert format_duration(4.25) == "4.2 s"
    assert format_duration(185) == "3 min 05 s"
