import dataclasses
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tests.conftest import Project
from tweetops.ingest.record import validate_record
from tweetops.ingest.step import ingest
from tweetops.ingest.synthetic import SyntheticSpec, generate_tweets

SPEC = SyntheticSpec(
    seed=7, n_tweets=3000, n_users=300, start_time=datetime(2026, 10, 1, tzinfo=UTC), days=7
)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_part_files(project: Project) -> None:
    overrides = ("ingest.n_tweets=1200", "ingest.tweets_per_file=500")
    ingest(project.settings(*overrides, "ingest.raw_dir=a/tweets"))
    ingest(project.settings(*overrides, "ingest.raw_dir=b/tweets"))
    ingest(project.settings(*overrides, "ingest.raw_dir=c/tweets", "ingest.seed=8"))
    first, second = _digest(Path("a/tweets")), _digest(Path("b/tweets"))
    assert list(first) == [
        "_COMPLETE.json",  # the completion marker: counts, no timestamp
        "synthetic-seed42-part-00000.jsonl",
        "synthetic-seed42-part-00001.jsonl",
        "synthetic-seed42-part-00002.jsonl",
    ]
    assert first == second
    other_parts = {
        name: digest
        for name, digest in _digest(Path("c/tweets")).items()
        if name.endswith(".jsonl")
    }
    assert set(other_parts.values()).isdisjoint(first.values())


def test_every_generated_record_fits_the_normalized_schema() -> None:
    for record in generate_tweets(SPEC):
        assert validate_record(record) == record


def test_entity_indices_point_at_their_text() -> None:
    for record in generate_tweets(SPEC):
        text = record["text"]
        for tag in record["entities"]["hashtags"]:
            assert text[tag["start"] : tag["end"]] == f"#{tag['tag']}"
        for mention in record["entities"]["mentions"]:
            assert text[mention["start"] : mention["end"]] == f"@{mention['username']}"
        for url in record["entities"]["urls"]:
            assert text[url["start"] : url["end"]] == url["url"]


def test_distributions_are_heavy_tailed_and_engagement_follows_reach() -> None:
    records = list(generate_tweets(SPEC))
    followers = np.array([r["author"]["public_metrics"]["followers_count"] for r in records])
    assert np.percentile(followers, 99) > 30 * np.median(followers)
    per_author = np.unique([r["author_id"] for r in records], return_counts=True)[1]
    assert per_author.max() > 10 * np.median(per_author)  # a few users write most tweets

    originals = [
        r for r in records if not any(ref["type"] == "retweeted" for ref in r["referenced_tweets"])
    ]
    retweet_share = 1 - len(originals) / len(records)
    assert 0.18 < retweet_share < 0.32
    reach = np.log1p([r["author"]["public_metrics"]["followers_count"] for r in originals])
    engagement = np.log1p([sum(r["public_metrics"].values()) for r in originals])
    assert np.corrcoef(reach, engagement)[0, 1] > 0.5


def test_ids_rise_with_time_and_are_unique() -> None:
    records = list(generate_tweets(SPEC))
    ids = [int(r["id"]) for r in records]
    assert len(set(ids)) == len(ids)
    times = [r["created_at"] for r in records]
    assert times == sorted(times)
    assert orjson.loads(orjson.dumps(records[0])) == records[0]


def _engagement(record: dict[str, Any]) -> int:
    return sum(record["public_metrics"].values())


def test_every_tweet_is_fetched_at_the_end_of_the_window() -> None:
    assert {r["fetched_at"] for r in generate_tweets(SPEC)} == {"2026-10-08T00:00:00.000Z"}


def test_engagement_grows_with_age_at_fetch() -> None:
    """The same tweets fetched a month later: the young ones gained, the old ones barely."""
    early = list(generate_tweets(SPEC))
    later = list(
        generate_tweets(dataclasses.replace(SPEC, fetched_at=datetime(2026, 11, 8, tzinfo=UTC)))
    )
    assert [r["id"] for r in early] == [r["id"] for r in later]
    young = [i for i, r in enumerate(early) if r["created_at"] >= "2026-10-07T21:00:00"]
    old = [i for i, r in enumerate(early) if r["created_at"] < "2026-10-05T00:00:00"]
    young_early = sum(_engagement(early[i]) for i in young)
    young_later = sum(_engagement(later[i]) for i in young)
    old_early = sum(_engagement(early[i]) for i in old)
    old_later = sum(_engagement(later[i]) for i in old)
    assert young_later > 1.5 * young_early  # at most 3 h old: under 40% of their engagement
    assert abs(old_later - old_early) < 0.01 * old_early  # over 3 days old: all of it
