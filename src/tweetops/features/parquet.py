"""Byte-stable Parquet: the same rows always give the same files (and so the same DVC md5).

Spark names each part file after a random write-job UUID, and the order of rows in a file
follows whichever shuffle block arrived first. :func:`write_stable` fixes both: rows go to a
fixed number of files by a hash of every column, are sorted by every column inside each file,
are compressed with one named codec, and the part files are renamed without the UUID. Parquet's
footer holds only the schema and the writer's version, so nothing else varies between runs.

A table with a unique key (no two rows share its values) is hashed and sorted by the key
alone: the key fixes each row's file and its place in it just as every column would, and
hashing and sorting a few columns costs much less than all of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql.types import MapType

from tweetops.spark import spark_path

FILES_PER_WRITE = 4  # fixed, not spark.sql.shuffle.partitions: the files must not depend on it
CODEC = "snappy"
_PART_NAME = re.compile(
    r"^(\.?part-\d{5})-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(-.*)$"
)


def write_stable(frame: DataFrame, folder: Path, key: Sequence[str] = ()) -> None:
    """Overwrite `folder` with `frame` as Parquet whose bytes depend only on the rows.

    `key`: columns no two rows of `frame` share (all of them together), which then alone
    place and order the rows; without one, every column (but maps) does. A key that is not
    unique gives files whose order of tied rows may vary between runs.
    """
    missing = [name for name in key if name not in frame.columns]
    if missing:
        raise ValueError(f"write_stable: key columns {missing} are not in the frame")
    keys = list(key) or [
        field.name for field in frame.schema.fields if not isinstance(field.dataType, MapType)
    ]
    (
        frame.repartition(FILES_PER_WRITE, *keys)
        .sortWithinPartitions(*keys)
        .write.mode("overwrite")
        .option("compression", CODEC)
        .parquet(spark_path(folder))
    )
    stable_part_names(folder)


def stable_part_names(folder: Path) -> None:
    """Drop the write job's UUID from the part files (and their checksums) in `folder`."""
    for path in folder.iterdir():
        match = _PART_NAME.match(path.name)
        if match is not None:
            path.replace(path.with_name(match.group(1) + match.group(2)))
