"""The one exception type users see: its message is a plain sentence saying what to do."""


class TweetopsError(Exception):
    """An error the user can fix (bad setting, missing credential, missing Java, bad input)."""
