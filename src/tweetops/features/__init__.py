"""Features: a Structured Streaming job turns raw tweets into three feature tables.

The logic is pure `DataFrame -> DataFrame` functions: :mod:`.parse` (read and validate records)
and :mod:`.tables` (users, author history, training rows, activity windows). The streaming job
(:mod:`.stream`, run as the step by :func:`build_features` in :mod:`.step`) and the batch twin
(:func:`build_features_batch` in :mod:`.batch`) are two thin I/O wrappers around the same
functions, so stream and batch agree by construction.

Outputs (Parquet):
- `users_dir`: one row per user, the profile of the user's latest tweet (by `created_at`, ties
  broken by tweet id), activity and engagement aggregates; rewritten after every micro-batch
  from the user state, into which each micro-batch's tweets are merged (the whole history is
  not aggregated again).
- `training_rows_dir`: one row per original tweet once the watermark has passed it: label
  `engagement = log1p(retweets + replies + likes + quotes)`, tweet features, the author's
  profile at tweet time and the author's point-in-time history; in `batch_id=<n>` folders.
  A one-shot run writes the tweets still behind the final watermark too (`flush_at_end`).
  The stream windows the last 7 days of history and carries per-author aggregates of the older
  tweets (:func:`author_carry`), so a micro-batch's cost does not grow with the history.
- `user_activity_dir`: per user and closed event-time window; in `batch_id=<n>` folders.
- `late_dir`: tweets older than the watermark when they arrived, with their lateness.
- `rejected_dir`: raw lines Spark could not read as a normalized tweet, with the reason.
"""

from tweetops.features.batch import FeatureTables, build_features_batch, read_raw_batch
from tweetops.features.parse import parse_tweets, rejected_rows, valid_tweets
from tweetops.features.step import (
    BatchProgress,
    FeaturesResult,
    build_features,
    stream_feature_tables,
)
from tweetops.features.tables import (
    author_carry,
    author_history,
    training_rows,
    user_activity,
    user_features,
)

__all__ = [
    "BatchProgress",
    "FeatureTables",
    "FeaturesResult",
    "author_carry",
    "author_history",
    "build_features",
    "build_features_batch",
    "parse_tweets",
    "read_raw_batch",
    "rejected_rows",
    "stream_feature_tables",
    "training_rows",
    "user_activity",
    "user_features",
    "valid_tweets",
]
