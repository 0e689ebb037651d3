"""The one exception type users see (a plain sentence saying what to do), and a stop signal."""

import signal


class TweetopsError(Exception):
    """An error the user can fix (bad setting, missing credential, missing Java, bad input)."""


class Interrupted(BaseException):
    """SIGTERM (or SIGINT) reached a step: its run ends KILLED and the process exits."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
