"""Typed settings: `params.yaml` and `plumbing.yaml` are the one source of defaults.

`params.yaml` holds what experiments vary (seeds, sizes, hyper-parameters, the promotion gate):
`dvc exp show` shows each of its keys as a column. `plumbing.yaml`, in the same folder, holds the
rest: where things go (`data`, the folder keys of each section) and how they run (Spark, MLflow,
the sources' plumbing). They are one set of settings, one section per step across both files; a
key lives in exactly one of them. Every step takes a :class:`Settings` object; nothing else in the
package reads either file. Overrides use DVC's `-S section.key=value` syntax, for a key of either
file, so the same words work for `tweetops`, `mlflow run -P` (through the MLproject commands) and
`dvc exp run -S` (which writes params.yaml; `-S plumbing.yaml:section.key=value` for the other).

The `data` section names every folder and report once. A step's path settings refer to it as
`raw_dir: $data.raw_tweets`, resolved here after the overrides, so `-S data.raw_tweets=...` moves
the folder for every step and `-S features.raw_dir=...` for one. `${data.raw_tweets}` is read the
same way, but the files avoid it: `dvc exp run -S` passes a file through OmegaConf, which
rewrites every `${...}` to its value (treeverse/dvc#11018).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlparse

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from tweetops.errors import TweetopsError

DEFAULT_PARAMS_FILE = Path("params.yaml")
PLUMBING_FILE_NAME = "plumbing.yaml"  # next to the params file

PositiveInt = Annotated[int, Field(gt=0)]
DAY_MS = 86_400_000
_UNITS_MS = {
    "millisecond": 1,
    "second": 1000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": DAY_MS,
    "week": 7 * DAY_MS,
}
_DURATION = re.compile(r"^\s*(\d+)\s*(millisecond|second|minute|hour|day|week)s?\s*$")


def duration_ms(text: str) -> int:
    """Milliseconds of a Spark-style duration such as `10 minutes` or `1 hour`."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like '10 minutes' or '1 hour'")
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def is_uri(location: str) -> bool:
    """True when `location` is a URI (`file:/...`, `s3a://...`, `hdfs://...`), not a path."""
    return bool(_URI.match(location))


_LOCATION_TYPES = (Path, Path | None, Path | str)


def location_value(value: Any, annotation: Any) -> Any:
    """A location setting as given: `file:` URIs become local paths (storage every node mounts
    at the same path); other URIs stay URIs where the field takes them (`Path | str`) and are
    refused where Python reads or writes the folder too."""
    if annotation not in _LOCATION_TYPES or not isinstance(value, str):
        return value
    if not is_uri(value):  # a local path (pydantic would keep a `Path | str` one a str)
        return Path(value) if annotation == Path | str else value
    parsed = urlparse(value)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file: URIs name no host: use file:///path, not {value}")
        return Path(unquote(parsed.path))
    if annotation in (Path, Path | None):
        raise ValueError(
            "remote URIs work only where Spark alone reads and writes (predict.input_path, "
            "predict.output_path, data.predictions), as this folder is also handled with "
            "Python's file functions (completion markers, state, reports): use a local path "
            "or a file:/// URI on storage every node mounts"
        )
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _location(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return location_value(value, field.annotation if field is not None else None)


class DataSettings(_Section):
    """Every folder and report of the pipeline, named once; step sections refer to these."""

    raw: Path
    raw_tweets: Path
    raw_manifests: Path
    raw_quarantine: Path
    ingest_checkpoints: Path
    users: Path
    training_rows: Path
    user_activity: Path
    late: Path
    rejected: Path
    features_checkpoints: Path
    predictions: Path | str  # Spark alone writes it (predict): a remote URI is fine
    metrics_report: Path
    train_report: Path
    tune_report: Path
    promotion_report: Path
    predictions_plot: Path
    importance_plot: Path
    tune_trials_plot: Path


class IngestSettings(_Section):
    """Where tweets come from and where the normalized snapshot lands."""

    source: Literal["synthetic", "search", "stream", "replay"]
    mode: Literal["replace", "append"]
    allow_empty: bool
    raw_dir: Path
    manifest_dir: Path
    quarantine_dir: Path
    tweets_per_file: PositiveInt
    max_clock_skew: str
    # synthetic
    seed: int
    n_tweets: PositiveInt
    n_users: PositiveInt
    synthetic_start_time: datetime
    synthetic_days: PositiveInt
    # search and stream (X API v2 through tweepy)
    api_base_url: str
    query: str
    max_tweets: PositiveInt
    start_time: datetime | None
    end_time: datetime | None
    stream_rules: list[str]
    max_seconds: PositiveInt
    checkpoint_dir: Path
    # replay
    path: Path | None

    @field_validator("max_clock_skew")
    @classmethod
    def _must_be_a_duration(cls, value: str) -> str:
        if duration_ms(value) <= 0:
            raise ValueError("must be a positive duration")
        return value

    @field_validator("synthetic_start_time", "start_time", "end_time")
    @classmethod
    def _must_be_timezone_aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a timezone, e.g. 2026-10-01T00:00:00Z")
        return value


class FeaturesSettings(_Section):
    """The Structured Streaming job that turns raw tweets into feature tables."""

    raw_dir: Path
    users_dir: Path
    training_rows_dir: Path
    user_activity_dir: Path
    late_dir: Path
    rejected_dir: Path
    checkpoint_dir: Path
    trigger: Literal["available_now", "continuous"]
    trigger_interval_s: Annotated[float, Field(gt=0.0)]
    max_files_per_trigger: PositiveInt
    watermark: str
    max_clock_skew: str  # a tweet dated later than now + this is rejected, never a watermark
    activity_window: str
    activity_slide: str | None
    incremental: bool
    flush_at_end: bool
    label_min_age: str | None

    @field_validator(
        "watermark", "max_clock_skew", "activity_window", "activity_slide", "label_min_age"
    )
    @classmethod
    def _must_be_duration(cls, value: str | None) -> str | None:
        if value is not None and duration_ms(value) <= 0:
            raise ValueError("must be a positive duration")
        return value


class TrainSettings(_Section):
    """The Spark ML pipeline, its split and its RandomForest hyperparameters."""

    training_rows_dir: Path
    seed: int
    test_fraction: Fraction
    split_partitions: PositiveInt
    num_trees: PositiveInt
    max_depth: Annotated[int, Field(ge=1, le=30)]
    max_bins: Annotated[int, Field(ge=2)]
    min_instances_per_node: PositiveInt
    subsampling_rate: Annotated[float, Field(gt=0.0, le=1.0)]
    feature_subset_strategy: Literal["auto", "all", "onethird", "sqrt", "log2"]
    storage_level: Literal["MEMORY_ONLY", "MEMORY_AND_DISK", "DISK_ONLY", "none"]
    metrics_file: Path
    run_file: Path
    predictions_plot_file: Path
    importance_plot_file: Path
    tuned_from: Path | None = None


IntRange = tuple[PositiveInt, PositiveInt]


class TuneSettings(_Section):
    """The Hyperopt search over the RandomForest hyperparameters."""

    backend: Literal["spark_trials", "mllib"]
    parallelism: PositiveInt | None
    timeout_s: PositiveInt | None
    max_rows: PositiveInt
    max_evals: PositiveInt
    algorithm: Literal["tpe", "random"]
    seed: int
    validation_fraction: Fraction
    num_trees: IntRange
    max_depth: tuple[Annotated[int, Field(ge=1, le=30)], Annotated[int, Field(ge=1, le=30)]]
    min_instances_per_node: IntRange
    subsampling_rate: tuple[
        Annotated[float, Field(gt=0.0, le=1.0)], Annotated[float, Field(gt=0.0, le=1.0)]
    ]
    result_file: Path
    trials_plot_file: Path  # the loss-by-trial table `dvc plots` draws

    @field_validator("num_trees", "max_depth", "min_instances_per_node", "subsampling_rate")
    @classmethod
    def _low_before_high(cls, value: tuple[Any, Any]) -> tuple[Any, Any]:
        if value[0] > value[1]:
            raise ValueError(f"range [{value[0]}, {value[1]}] must be [low, high]")
        return value


class MainSettings(_Section):
    """The `main` entry point: which steps the chain runs."""

    tune: bool
    force: bool = False  # true: rerun steps that are done (see tweetops.skipping)


class PromoteSettings(_Section):
    """Registration, the promotion gate and alias moves in the MLflow Model Registry."""

    model_name: str
    run_file: Path
    promotion_file: Path
    min_gain_over_baseline: Annotated[float, Field(ge=0.0, lt=1.0)]
    min_improvement: Annotated[float, Field(ge=0.0, lt=1.0)]
    min_comparison_rows: Annotated[int, Field(ge=1)]
    force: bool


class PredictSettings(_Section):
    """Batch scoring with a registered model."""

    model_uri: str
    input_path: Path | str  # Spark alone reads and writes these: remote URIs are fine
    output_path: Path | str


_SPARK_MASTER = re.compile(
    r"^(local(\[(\d+|\*)(,\s*\d+)?\])?|local-cluster\[\d+,\s*\d+,\s*\d+\]"
    r"|spark://\S+|yarn|k8s://\S+|sc://\S+)$"
)
_MEMORY_SIZE = re.compile(r"^\d+(b|k|kb|m|mb|g|gb|t|tb|p|pb)?$", re.IGNORECASE)


class SparkSettings(_Section):
    """How the one SparkSession is built; `master` may be a cluster URL."""

    master: str
    app_name: str
    shuffle_partitions: PositiveInt
    driver_memory: str
    ui_enabled: bool
    log_level: Literal["ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"]
    conf: dict[str, str]

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if not _SPARK_MASTER.match(value):
            raise ValueError(
                "must be local, local[N], local[*], spark://host:port, yarn, "
                "k8s://https://host:port or sc://host:port (Spark Connect)"
            )
        return value

    @field_validator("driver_memory")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if not _MEMORY_SIZE.match(value):
            raise ValueError("must be a size such as 512m, 2g or 4gb")
        return value

    @field_validator("conf", mode="before")
    @classmethod
    def _stringify_values(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()
            }
        return value


class MlflowSettings(_Section):
    """Experiment name; the tracking store is MLflow's own default or MLFLOW_TRACKING_URI."""

    experiment: str


class Settings(_Section):
    """All settings of one run, one section per pipeline step."""

    data: DataSettings
    ingest: IngestSettings
    features: FeaturesSettings
    train: TrainSettings
    tune: TuneSettings
    main: MainSettings
    promote: PromoteSettings
    predict: PredictSettings
    spark: SparkSettings
    mlflow: MlflowSettings

    def flat(self, *sections: str) -> dict[str, Any]:
        """Return `section.key -> value` for the given sections (all when none are named)."""
        data = self.model_dump(mode="json")
        chosen = sections or tuple(data)
        flat: dict[str, Any] = {}
        for section in chosen:
            for key, value in data[section].items():
                flat[f"{section}.{key}"] = value
        return flat


def parse_override(text: str, default_section: str | None = None) -> tuple[list[str], Any]:
    """Split `section.key=value` into its key path and its YAML-typed value.

    A bare `key=value` belongs to `default_section` (the step being run).
    """
    name, sep, raw_value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise TweetopsError(f"Override {text!r} is not of the form section.key=value.")
    path = name.split(".")
    if len(path) == 1:
        if default_section is None:
            raise TweetopsError(f"Override {text!r} needs a section, e.g. train.{name}=...")
        path = [default_section, name]
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else raw_value
    except yaml.YAMLError:
        value = raw_value
    return path, value


def plumbing_file(params_file: Path | str) -> Path:
    """The plumbing.yaml read with `params_file`: the one in the same folder."""
    return Path(params_file).with_name(PLUMBING_FILE_NAME)


def _read_sections(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TweetopsError(
            f"{path} was not found in {Path.cwd()}: run from the project root "
            f"or pass --params with the path of params.yaml (plumbing.yaml beside it)."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TweetopsError(f"{path} is not valid YAML ({exc}); fix the file.") from exc
    if not isinstance(data, dict) or not all(
        isinstance(section, dict) for section in data.values()
    ):
        raise TweetopsError(f"{path} must hold a mapping of sections; fix the file.")
    return data


def read_settings_files(params_file: Path | str = DEFAULT_PARAMS_FILE) -> dict[str, Any]:
    """The sections of `params_file` and of its plumbing.yaml, merged key by key.

    A key set in both files raises TweetopsError: each setting has one home.
    """
    params_path = Path(params_file)
    merged = _read_sections(params_path)
    plumbing_path = plumbing_file(params_path)
    for section, keys in _read_sections(plumbing_path).items():
        target = merged.setdefault(section, {})
        for key, value in keys.items():
            if key in target:
                raise TweetopsError(
                    f"Setting {section}.{key} is in both {params_path} and {plumbing_path}; "
                    f"keep it in one of them."
                )
            target[key] = value
    return merged


def load_settings(
    params_file: Path | str = DEFAULT_PARAMS_FILE,
    overrides: list[str] | None = None,
    default_section: str | None = None,
) -> Settings:
    """Read `params_file` and the plumbing.yaml beside it, apply `overrides`, and validate.

    Empty override values (`train.num_trees=`) are ignored: an empty value means "use the
    files". Any invalid value raises :class:`TweetopsError` with one sentence.
    """
    data = read_settings_files(params_file)
    for text in overrides or []:
        keys, value = parse_override(text, default_section)
        if value == "":
            continue
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[keys[-1]] = value
    data = resolve_references(data)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise TweetopsError(_describe_validation_error(exc)) from exc


# `$section.key` (what plumbing.yaml uses) or `${section.key}`
_REFERENCE = re.compile(
    r"^\$(?:\{(?P<braced>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\}"
    r"|(?P<bare>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+))$"
)


def resolve_references(data: dict[str, Any]) -> dict[str, Any]:
    """Replace every value of the form `$section.key` (or `${section.key}`) by the value it names.

    References may chain (a reference to a reference); a reference to a missing key or a cycle
    raises TweetopsError naming it.
    """

    def lookup(path: str, seen: tuple[str, ...]) -> Any:
        if path in seen:
            raise TweetopsError(
                f"Settings reference ${path} refers to itself through "
                f"{' -> '.join(seen)}; fix plumbing.yaml."
            )
        node: Any = data
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                raise TweetopsError(
                    f"Settings reference ${path} names no setting; fix it "
                    f"in params.yaml, plumbing.yaml or the override."
                )
            node = node[key]
        return resolve(node, (*seen, path))

    def resolve(value: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(value, str):
            match = _REFERENCE.match(value.strip())
            return lookup(match["braced"] or match["bare"], seen) if match else value
        if isinstance(value, dict):
            return {key: resolve(item, seen) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item, seen) for item in value]
        return value

    resolved: dict[str, Any] = resolve(data, ())
    return resolved


def _describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    given = first.get("input")
    problems = len(exc.errors())
    more = f" ({problems - 1} more problem(s) after this one)" if problems > 1 else ""
    if first["type"] == "extra_forbidden":
        return (
            f"Setting {where} is unknown; check its spelling against params.yaml and "
            f"plumbing.yaml{more}."
        )
    return (
        f"Setting {where}={given!r} is invalid: {first['msg']}; "
        f"fix it in params.yaml, plumbing.yaml or the override{more}."
    )
