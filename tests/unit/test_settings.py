from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PARAMS_FILE, PLUMBING_FILE, copy_settings
from tweetops.errors import TweetopsError
from tweetops.settings import load_settings, parse_override, resolve_references

# what experiments vary, in the order `dvc exp show` shows it: the model's hyper-parameters
# first, as they fit in a 160-column terminal beside the metrics (tests/e2e/test_dvc_experiments)
EXPERIMENT_KEYS = [
    "train.num_trees",
    "train.max_depth",
    "train.max_bins",
    "train.min_instances_per_node",
    "train.subsampling_rate",
    "train.feature_subset_strategy",
    "train.seed",
    "train.test_fraction",
    "train.tuned_from",
    "promote.min_gain_over_baseline",
    "promote.min_improvement",
    "promote.min_comparison_rows",
    "ingest.seed",
    "ingest.n_tweets",
    "ingest.n_users",
    "ingest.synthetic_days",
    "features.watermark",
    "features.activity_window",
    "features.activity_slide",
    "features.flush_at_end",
    "features.label_min_age",
    "tune.max_evals",
    "tune.algorithm",
    "tune.seed",
    "tune.validation_fraction",
    "tune.num_trees",
    "tune.max_depth",
    "tune.min_instances_per_node",
    "tune.subsampling_rate",
]


def _flat_file(path: Path) -> dict[str, Any]:
    sections = yaml.safe_load(path.read_text())
    return {
        f"{section}.{key}": value
        for section, keys in sections.items()
        for key, value in keys.items()
    }


def test_params_yaml_holds_only_what_experiments_vary() -> None:
    assert list(_flat_file(PARAMS_FILE)) == EXPERIMENT_KEYS


def test_every_other_setting_resolves_from_plumbing_yaml() -> None:
    settings = load_settings(PARAMS_FILE).flat()
    plumbing = _flat_file(PLUMBING_FILE)
    assert set(plumbing) == set(settings) - set(EXPERIMENT_KEYS)
    # each value is the file's (a `$data.<key>` reference resolved), typed by its setting
    raw = yaml.safe_load(PLUMBING_FILE.read_text())
    resolved = resolve_references({**yaml.safe_load(PARAMS_FILE.read_text()), **raw})
    for name in plumbing:
        section, key = name.split(".")
        expected = resolved[section][key]
        assert settings[name] == (str(expected) if isinstance(settings[name], str) else expected)
    # as they were when params.yaml held them all
    assert settings["data.raw"] == "data/raw" and settings["ingest.raw_dir"] == "data/raw/tweets"
    assert settings["spark.master"] == "local[2]" and settings["mlflow.experiment"] == "tweetops"
    assert settings["promote.model_name"] == "tweet-engagement"
    assert settings["features.max_clock_skew"] == settings["ingest.max_clock_skew"] == "1 hour"


def test_overrides_reach_keys_of_both_files() -> None:
    settings = load_settings(PARAMS_FILE, ["train.num_trees=7", "train.storage_level=none"])
    assert (settings.train.num_trees, settings.train.storage_level) == (7, "none")


def test_a_key_in_both_files_is_one_sentence(tmp_path: Path) -> None:
    params = copy_settings(tmp_path)
    (tmp_path / "plumbing.yaml").write_text(
        PLUMBING_FILE.read_text().replace("train:\n", "train:\n  num_trees: 9\n", 1)
    )
    with pytest.raises(TweetopsError, match=r"^Setting train.num_trees is in both .*; keep it in"):
        load_settings(params)


def test_a_missing_plumbing_yaml_says_where_it_belongs(tmp_path: Path) -> None:
    params = copy_settings(tmp_path)
    (tmp_path / "plumbing.yaml").unlink()
    with pytest.raises(TweetopsError, match=r"plumbing.yaml was not found .*plumbing.yaml beside"):
        load_settings(params)


def test_params_yaml_is_the_source_of_defaults() -> None:
    settings = load_settings(PARAMS_FILE)
    assert settings.ingest.source == "synthetic"
    assert settings.ingest.n_tweets == 20000
    assert settings.spark.master == "local[2]"
    assert settings.promote.model_name == "tweet-engagement"


def test_overrides_are_typed_by_yaml_and_validated() -> None:
    settings = load_settings(
        PARAMS_FILE, ["train.num_trees=7", "spark.ui_enabled=false", "ingest.stream_rules=[a, b]"]
    )
    assert settings.train.num_trees == 7
    assert settings.spark.ui_enabled is False
    assert settings.ingest.stream_rules == ["a", "b"]


def test_bare_key_belongs_to_the_step_section() -> None:
    settings = load_settings(PARAMS_FILE, ["max_depth=3"], default_section="train")
    assert settings.train.max_depth == 3


def test_empty_override_keeps_params_yaml() -> None:
    settings = load_settings(PARAMS_FILE, ["train.num_trees="])
    assert settings.train.num_trees == load_settings(PARAMS_FILE).train.num_trees


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.num_trees=abc", "Setting train.num_trees='abc' is invalid"),
        ("train.num_trees=0", "Setting train.num_trees=0 is invalid"),
        ("train.test_fraction=1.5", "Setting train.test_fraction=1.5 is invalid"),
        ("ingest.source=carrier-pigeon", "Setting ingest.source='carrier-pigeon' is invalid"),
        ("train.numtrees=5", "Setting train.numtrees is unknown"),
        ("ingest.synthetic_start_time=2026-01-01T00:00:00", "must carry a timezone"),
    ],
)
def test_bad_values_give_one_sentence(override: str, expected: str) -> None:
    with pytest.raises(TweetopsError) as caught:
        load_settings(PARAMS_FILE, [override])
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_override_without_equals_sign_is_rejected() -> None:
    with pytest.raises(TweetopsError, match=r"not of the form section\.key=value"):
        parse_override("train.num_trees")


def test_missing_params_file_says_where_to_run(tmp_path: Path) -> None:
    with pytest.raises(TweetopsError, match="run from the project root"):
        load_settings(tmp_path / "params.yaml")


def test_flat_names_match_params_yaml_keys() -> None:
    flat = load_settings(PARAMS_FILE).flat("train")
    assert flat["train.seed"] == 42
    assert flat["train.training_rows_dir"] == "data/features/training"
    assert all(key.startswith("train.") for key in flat)


def test_step_paths_refer_to_the_data_section() -> None:
    settings = load_settings(PARAMS_FILE)
    assert settings.data.training_rows == Path("data/features/training")
    assert settings.train.training_rows_dir == settings.data.training_rows
    assert settings.features.training_rows_dir == settings.data.training_rows
    assert settings.predict.input_path == settings.data.training_rows
    assert settings.promote.run_file == settings.train.run_file == settings.data.train_report


def test_moving_a_data_folder_moves_it_for_every_step() -> None:
    settings = load_settings(PARAMS_FILE, ["data.raw_tweets=elsewhere/tweets"])
    assert settings.ingest.raw_dir == settings.features.raw_dir == Path("elsewhere/tweets")
    one_step = load_settings(PARAMS_FILE, ["features.raw_dir=mine"])
    assert one_step.features.raw_dir == Path("mine")
    assert one_step.ingest.raw_dir == Path("data/raw/tweets")


def test_braced_references_read_like_bare_ones() -> None:
    settings = load_settings(
        PARAMS_FILE, ["features.raw_dir=${data.users}", "ingest.raw_dir=$data.late"]
    )
    assert settings.features.raw_dir == settings.data.users
    assert settings.ingest.raw_dir == settings.data.late
    # a value that merely starts with $ is not a reference
    assert load_settings(PARAMS_FILE, ["ingest.query=$TSLA"]).ingest.query == "$TSLA"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("features.raw_dir=${data.nowhere}", r"\$data.nowhere names no setting"),
        ("features.raw_dir=$data.nowhere", r"\$data.nowhere names no setting"),
        ("data.users=$features.users_dir", "refers to itself"),
    ],
)
def test_bad_references_are_one_sentence(override: str, expected: str) -> None:
    with pytest.raises(TweetopsError, match=expected):
        load_settings(PARAMS_FILE, [override])


@pytest.mark.parametrize(
    "master",
    [
        "local",
        "local[*]",
        "local[4]",
        "local[2,3]",
        "local-cluster[2, 1, 1024]",
        "spark://host:7077",
        "yarn",
        "k8s://https://10.0.0.1:6443",
    ],
)
def test_spark_masters_spark_knows_are_accepted(master: str) -> None:
    assert load_settings(PARAMS_FILE, [f"spark.master={master}"]).spark.master == master


@pytest.mark.parametrize("memory", ["512m", "2g", "4GB", "1024k"])
def test_driver_memory_sizes_are_accepted(memory: str) -> None:
    assert (
        load_settings(PARAMS_FILE, [f"spark.driver_memory={memory}"]).spark.driver_memory == memory
    )


@pytest.mark.parametrize(
    "setting",
    [
        "spark.master=bogus://x",
        "spark.master=local[two]",
        "spark.driver_memory=lots",
        "spark.driver_memory=2 g",
    ],
)
def test_spark_settings_spark_cannot_start_with_are_refused(setting: str) -> None:
    with pytest.raises(TweetopsError, match=setting.split("=")[0]):
        load_settings(PARAMS_FILE, [setting])
