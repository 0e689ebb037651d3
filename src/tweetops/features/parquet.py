"""Byte-stable Parquet: the same rows always give the same files (and so the same DVC md5).

Spark names each part file after a random write-job UUID, and the order of rows in a file
follows whichever shuffle block arrived first. :func:`write_stable` fixes both: rows go to a
fixed number of files by a hash of every column, are sorted by every column inside each file,
are compressed with one named codec, and the part files are renamed without the UUID. Parquet's
footer holds only the schema and the writer's version, so nothing else varies between runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql.types import MapType

from tweetops.spark import spark_path

FILES_PER_WRITE = 4  # fixed, not spark.sql.shuffle.partitions: the files must not depend on it
CODEC = "snappy"
_PART_NAME = re.compile(
    r"^(\.?part-\d{5})-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(-.*)$"
)


def write_stable(frame: DataFrame, folder: Path) -> None:
    """Overwrite `folder` with `frame` as Parquet whose bytes depend only on the rows."""
    keys = [field.name for field in frame.schema.fields if not isinstance(field.dataType, MapType)]
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
