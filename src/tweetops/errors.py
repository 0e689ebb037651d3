"""The one exception type users see (a plain sentence saying what to do), and a stop signal."""

import os
import signal

# MLflow's error codes for HTTP 401 and 403 from an authenticated tracking server
ACCESS_ERROR_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})


class TweetopsError(Exception):
    """An error the user can fix (bad setting, missing credential, missing Java, bad input)."""


class Interrupted(BaseException):
    """SIGTERM (or SIGINT) reached a step: its run ends KILLED and the process exits."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def access_refused(action: str, error_code: str) -> TweetopsError:
    """One sentence for a tracking server that refused `action` (401 or 403)."""
    if error_code == "UNAUTHENTICATED":
        return TweetopsError(
            f"The tracking server refused {action} without a valid login: set "
            f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (`make cluster-up` prints "
            f"them)."
        )
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    return TweetopsError(
        f"The tracking server refused {action} to user {user!r}, who may only read there: ask "
        f"an admin of the server for EDIT permission on the experiment and the registered model."
    )
