"""`python -m tweetops <step>`."""

from tweetops.cli import app

app(prog_name="tweetops")
