"""A class-data-sharing (CDS) archive of the Spark driver's classes, so the JVM starts faster.

A Spark driver JVM loads and verifies thousands of classes from Spark's jars before it runs a
first job. Java 17 can write the classes a JVM loaded to an archive when it exits
(`-XX:ArchiveClassesAtExit`); a later JVM given that archive (`-XX:SharedArchiveFile`) maps them
instead. On a 2-core machine a driver reaches its first result 1.4 to 1.9 times sooner
(bench/spark_start.py prints the figures), a time every `tweetops <step>` process pays once.

`python -m tweetops.spark_cds` (run by `make` after installing) starts a small local Spark job
of the kinds the steps run, lets its JVM exit and write the archive to a temporary file, and
only then renames it into place: a truncated archive crashes the JVM that maps it, so the
archive appears whole or not at all. :func:`tweetops.spark.archive_java_options` hands the
archive to every driver that :func:`tweetops.spark.build_spark` starts, when it exists. The
JVM itself checks that the archive was made by the same JVM build and class path, and
otherwise ignores it (its warning is switched off: the run is only slower).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pyspark

from tweetops.errors import TweetopsError
from tweetops.settings import SparkSettings
from tweetops.spark import (
    QUIET_CDS_LOG,
    archive_path,
    build_spark,
    check_java,
    java_executable,
)
from tweetops.tracking import process_alive


def remove_abandoned_archives(folder: Path) -> list[Path]:
    """Delete temporary archives whose writer is gone (a killed build); returns them."""
    removed = []
    for partial in folder.glob("*.jsa.*.tmp"):
        writer = partial.name.rsplit(".", 2)[-2]
        if process_alive(writer):
            continue
        partial.unlink(missing_ok=True)
        removed.append(partial)
    return removed


def build_archive() -> Path:
    """Run a small local Spark job under `-XX:ArchiveClassesAtExit`, wait for its JVM to exit,
    then move the archive it wrote into place. Returns the archive's path.

    Call it in a process that has not started Spark yet (`python -m tweetops.spark_cds`): the
    archive is written by the JVM this call starts, when it exits.
    """
    check_java()
    java = java_executable()
    target = archive_path(java)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_archives(target.parent)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    settings = SparkSettings(
        master="local[2]",
        app_name="tweetops-cds",
        shuffle_partitions=2,
        driver_memory="1g",
        ui_enabled=False,
        log_level="ERROR",
        conf={
            "spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={partial} {QUIET_CDS_LOG}"
        },
    )
    spark = build_spark(settings)
    gateway = spark.sparkContext._gateway
    jvm_process = getattr(gateway, "proc", None)
    if gateway is None or jvm_process is None:
        spark.stop()
        raise TweetopsError("Spark's driver JVM was not started by this process; nothing saved.")
    try:
        with tempfile.TemporaryDirectory(prefix="tweetops-cds-") as scratch:
            _representative_job(spark, Path(scratch))
    finally:
        spark.stop()
        gateway.shutdown()
        jvm_process.stdin.close()  # the JVM exits on EOF, writing the archive on its way out
        exit_code = jvm_process.wait(timeout=600)
    if exit_code != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise TweetopsError(
            f"The Spark driver exited with status {exit_code} before writing its class archive; "
            f"Spark still works, only its start is slower."
        )
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, target)
    return target


def _representative_job(spark: pyspark.sql.SparkSession, scratch: Path) -> None:
    """Load the classes the steps use: JSON read as a stream, Parquet, aggregations, Spark ML."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import StringIndexer, VectorAssembler
    from pyspark.ml.regression import RandomForestRegressor
    from pyspark.sql import functions as F

    source = scratch / "json"
    source.mkdir()
    lines = [
        f'{{"id": "{n}", "lang": "{"en" if n % 2 else "de"}", "followers": {n * 7 % 50}, '
        f'"created_at": "2026-10-01T{n % 24:02d}:00:00.000Z"}}'
        for n in range(200)
    ]
    (source / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    schema = "id STRING, lang STRING, followers LONG, created_at TIMESTAMP"
    stream = (
        spark.readStream.schema(schema)
        .json(str(source))
        .withWatermark("created_at", "1 hour")
        .groupBy(F.window("created_at", "1 hour"), "lang")
        .agg(F.count("*").alias("tweets"), F.sum("followers").alias("followers"))
    )
    query = (
        stream.writeStream.outputMode("append")
        .format("parquet")
        .option("path", str(scratch / "windows"))
        .option("checkpointLocation", str(scratch / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    rows = spark.read.schema(schema).json(str(source))
    rows.write.mode("overwrite").parquet(str(scratch / "rows"))
    table = spark.read.parquet(str(scratch / "rows")).withColumn(
        "label", F.log1p(F.col("followers").cast("double"))
    )
    pipeline = Pipeline(
        stages=[
            StringIndexer(inputCol="lang", outputCol="lang_index", handleInvalid="keep"),
            VectorAssembler(inputCols=["lang_index", "followers"], outputCol="features"),
            RandomForestRegressor(numTrees=3, maxDepth=3, seed=1),
        ]
    )
    model = pipeline.fit(table)
    model.transform(table).agg(F.avg("prediction")).collect()
    model.write().overwrite().save(str(scratch / "model"))


def main() -> int:
    """Build the archive; one sentence on failure (Spark then simply starts without it)."""
    try:
        print(f"Spark class archive written to {build_archive()}")
    except TweetopsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
