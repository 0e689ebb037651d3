"""Ingest: tweets from a source land as a validated, deduplicated JSONL snapshot under `data/raw`.

Every source yields `(candidate, location)` pairs in a
:class:`~tweetops.ingest.source_batch.SourceBatch` (synthetic in
:mod:`~tweetops.ingest.synthetic`, search and stream in :mod:`~tweetops.ingest.xapi`,
archives in :mod:`~tweetops.ingest.replay`); one
:class:`~tweetops.ingest.snapshot.SnapshotWriter` validates (:mod:`~tweetops.ingest.record`),
deduplicates, quarantines and writes them. :mod:`~tweetops.ingest.step` is the step.

This package file imports nothing, so a reader of the snapshot (features) does not load the
sources.
"""
