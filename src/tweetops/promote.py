"""Promote: register a training run's model and decide whether it becomes the champion.

The run's model is registered once (promoting the same run again reuses its version) and gets
alias `challenger`. The challenger and the current champion are scored on the same rows, rows
neither of them trained on: the current training rows that are test rows under both runs' split
settings (:func:`tweetops.dataset.is_test_row`; the champion's settings are tags of its version).
`champion` moves when the challenger beats the mean baseline by `promote.min_gain_over_baseline`
and the champion by `promote.min_improvement` (relative rmse), on at least
`promote.min_comparison_rows` rows, with the champion's input schema (or `promote.force`).
The rule is :func:`decide_promotion`, a pure function; the core (:func:`compare`) scores the
models the shell loaded and decides, without touching MLflow; the shell then registers the
version, moves the aliases and tags it, and :mod:`tweetops.registry` records every move. Promotes
of one model on one machine run one at a time (a file lock, held from reading the champion to
moving it); what promote reports is what the registry holds when it is done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tweetops import registry
from tweetops.contracts import SplitSpec, TrainedModel, read_contract
from tweetops.dataset import SPLIT_METHOD, is_test_row, load_training_rows
from tweetops.errors import TweetopsError
from tweetops.model.metrics import rmse as score_rmse
from tweetops.runner import SparkStepRun, run_step
from tweetops.schema import LABEL_COLUMN, MODEL_INPUT_COLUMNS
from tweetops.settings import PromoteSettings, Settings
from tweetops.tracking import DVC_EXPERIMENT_TAG, REGISTERED_MODEL_URI_TAG, dvc_experiment

CHALLENGER, CHAMPION = registry.CHALLENGER, registry.CHAMPION
PROMOTE_SECTIONS = ("promote", "spark")
SPLIT_TAGS = ("tweetops.split.seed", "tweetops.split.test_fraction")
UNREGISTERED = "unregistered"  # the version a challenger is compared under before it has one


@dataclass(frozen=True)
class Scored:
    """A registered version and its rmse on the comparison rows."""

    version: str
    rmse: float


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the challenger becomes champion, and why, in one sentence."""

    promoted: bool
    reason: str


def decide_promotion(
    challenger: Scored,
    champion: Scored | None,
    *,
    baseline_rmse: float,
    comparison_rows: int,
    same_schema: bool,
    gate: PromoteSettings,
) -> PromotionDecision:
    """The champion rule, on rmses measured on the same `comparison_rows` rows.

    A challenger that already is the champion stays it. Otherwise it needs at least
    `gate.min_comparison_rows` rows, a relative gain over the mean baseline above
    `gate.min_gain_over_baseline`, and, against a champion, the champion's input schema (unless
    `gate.force`) and a relative gain over the champion above `gate.min_improvement`.
    """
    if champion is not None and champion.version == challenger.version:
        return PromotionDecision(True, "already champion")
    if comparison_rows < gate.min_comparison_rows:
        return PromotionDecision(
            False,
            (
                f"only {comparison_rows} rows are test rows of both runs, fewer than "
                f"promote.min_comparison_rows={gate.min_comparison_rows}: too few to compare; "
                f"ingest more tweets"
            ),
        )
    failures = []
    versus_baseline = _gain(challenger.rmse, baseline_rmse)
    if champion is not None:
        versus_champion = _gain(challenger.rmse, champion.rmse)
        if versus_champion > gate.min_improvement:
            verdict = f"beats champion v{champion.version} rmse {champion.rmse:.4f}"
        else:
            verdict = f"does not beat champion v{champion.version} rmse {champion.rmse:.4f}"
            failures.append(verdict)
        comparison = (
            f"challenger rmse {challenger.rmse:.4f} {verdict} "
            f"({versus_champion:+.1%}, needs > {gate.min_improvement:.1%}) on the same "
            f"{comparison_rows} test rows"
        )
    else:
        comparison = (
            f"no champion yet; challenger rmse {challenger.rmse:.4f} on {comparison_rows} test rows"
        )
    if versus_baseline <= gate.min_gain_over_baseline:
        failures.append("baseline")
        comparison += (
            f"; gains only {versus_baseline:.1%} over the mean baseline rmse "
            f"{baseline_rmse:.4f} (needs > {gate.min_gain_over_baseline:.1%})"
        )
    if champion is not None and not same_schema:
        if gate.force:
            comparison += "; input schema differs from the champion's, promoted by force"
        else:
            failures.append("schema")
            comparison += (
                f"; its input schema differs from champion v{champion.version}'s: "
                f"promote with -S force=true to replace it"
            )
    return PromotionDecision(not failures, comparison)


def _gain(rmse: float, reference: float) -> float:
    return (reference - rmse) / reference if reference > 0 else 0.0


@dataclass(frozen=True)
class PromotionResult:
    """What promote did, why, and what the registry holds afterwards."""

    model_name: str
    version: str
    promoted: bool
    reason: str
    challenger_rmse: float
    champion_version: str | None
    champion_rmse: float | None
    baseline_rmse: float = 0.0
    comparison_rows: int = 0
    newly_registered: bool = True
    champion_after: str | None = None
    experiment: str | None = None  # the DVC experiment it ran in: no alias moved

    def logged_metrics(self) -> dict[str, float]:
        """The challenger's rmse, the champion's when compared, and whether it was promoted."""
        return {
            "challenger_rmse": self.challenger_rmse,
            "promoted": float(self.promoted),
            "baseline_rmse": self.baseline_rmse,
            "comparison_rows": float(self.comparison_rows),
            **({"champion_rmse": self.champion_rmse} if self.champion_rmse is not None else {}),
        }

    def summary(self) -> str:
        """One line: the version, where the champion alias is now, and the reason."""
        if self.champion_after == self.version:
            alias = f"now {CHAMPION}"
        elif self.champion_after is None:
            alias = f"no {CHAMPION} yet"
        else:
            alias = f"{CHAMPION} is v{self.champion_after}"
        role = (
            f"registered for DVC experiment {self.experiment}"
            if self.experiment is not None
            else f"is {CHALLENGER}"
        )
        return f"promote: {self.model_name} v{self.version} {role}; {alias} ({self.reason})"


@dataclass(frozen=True)
class Contenders:
    """What the shell read from the registry for the core: both models, loaded, and the split.

    `challenger_version` is the version the training run already has (None before its first
    promote); `champion` is None when there is no champion or it is the challenger itself.
    """

    challenger: PyFuncModel
    challenger_version: str | None
    champion_version: str | None
    champion: PyFuncModel | None
    champion_split: dict[str, float | int] | None  # the champion's split: seed, test_fraction
    unknown_split: str = ""  # said in the reason when a forced promote compares without it


@dataclass(frozen=True)
class Comparison:
    """The core's output: both rmses on the same rows, the baseline, and the decision."""

    challenger_rmse: float
    champion_rmse: float | None
    baseline_rmse: float
    comparison_rows: int
    decision: PromotionDecision


def promote(settings: Settings) -> PromotionResult:
    """Register the model of the run named in `promote.run_file` and decide on `champion`.

    The shell reads the registry and loads both models before the step's run opens; the core
    (:func:`compare`) scores them and decides without touching MLflow; the publish step
    registers the version, moves the aliases and tags it. All of it holds the registry lock. In a
    DVC experiment (`DVC_EXP_NAME`) the version is registered and tagged with the experiment, and
    no alias moves (:func:`experiment_outcome`).
    """
    config = settings.promote
    experiment = dvc_experiment()
    trained = read_contract(config.run_file, TrainedModel, written_by="train")
    client = MlflowClient()
    training_run = _live_training_run(client, trained.run_id)

    with registry.registry_lock(config.model_name):
        registry.settle_interrupted_move(client, config.model_name)
        contenders = _contenders(client, trained, config.model_name, config.force)

        def core(run: SparkStepRun) -> Comparison:
            rows = load_training_rows(run.spark, Path(trained.split.training_rows_dir))
            return compare(rows, trained.split, contenders, config)

        def publish(comparison: Comparison, run: SparkStepRun) -> PromotionResult:
            result = _publish(
                client, trained, training_run, contenders, comparison, config, experiment
            )
            mlflow.set_tags(
                {
                    "tweetops.model_version": result.version,
                    REGISTERED_MODEL_URI_TAG: f"models:/{result.model_name}/{result.version}",
                    "tweetops.promotion": result.reason,
                }
            )
            return result

        return run_step(
            settings,
            "promote",
            PROMOTE_SECTIONS,
            core,
            needs_spark=True,
            publish=publish,
            reports=lambda result: {config.promotion_file: asdict(result)},
        )


def _contenders(client: MlflowClient, trained: TrainedModel, name: str, force: bool) -> Contenders:
    """Read the registry: the run's version if any, the champion, its split; load both models.

    A champion whose split is unknown is refused in one sentence, unless `force`: then the
    comparison uses the challenger's test rows alone, and the reason says so.
    """
    version = registry.find_version(client, name, trained.model_uri, trained.run_id)
    champion_version = registry.champion_version(client, name)
    challenger = _load(trained.model_uri)
    if champion_version is None or champion_version == version:
        return Contenders(challenger, version, champion_version, None, None)
    champion_split = split_of(client, name, champion_version)
    unknown_split = ""
    if champion_split is None:
        if not force:
            raise TweetopsError(
                f"The split settings of champion v{champion_version} are unknown (no "
                f"{SPLIT_TAGS[0]} tags, no train.seed param on its run), so rows it never "
                f"trained on cannot be told apart: promote with -S force=true to compare on "
                f"the challenger's test rows alone, or set the tags {', '.join(SPLIT_TAGS)} on "
                f"v{champion_version}."
            )
        unknown_split = (
            f"; champion v{champion_version}'s split is unknown: compared on the "
            f"challenger's test rows, which it may have trained on (force)"
        )
    return Contenders(
        challenger=challenger,
        challenger_version=version,
        champion_version=champion_version,
        champion=_load(f"models:/{name}/{champion_version}"),
        champion_split=champion_split,
        unknown_split=unknown_split,
    )


def experiment_outcome(decision: PromotionDecision, experiment: str) -> PromotionDecision:
    """What promote does in DVC experiment `experiment`: register only, move no alias.

    Production aliases move only from the main workspace: its pipeline, `tweetops promote` or
    `tweetops registry rollback`. The gate's verdict is kept in the reason, so a user knows
    whether the experiment would have been promoted.
    """
    verdict = "would be promoted" if decision.promoted else "would not be promoted"
    return replace(
        decision,
        promoted=False,
        reason=(
            f"DVC experiment {experiment}: registered only, no alias moved ({verdict}: "
            f"{decision.reason}); `dvc exp apply {experiment}` then `tweetops promote` promotes it"
        ),
    )


def compare(
    rows: DataFrame, split: SplitSpec, contenders: Contenders, gate: PromoteSettings
) -> Comparison:
    """Score challenger and champion on the rows that are test rows of both runs; decide.

    The core of promote: loaded models and training rows in, scores and the decision out.
    """
    flag = is_test_row(seed=split.seed, test_fraction=split.test_fraction)
    champion_split = contenders.champion_split
    both = flag
    if champion_split is not None:
        both = flag & is_test_row(
            seed=int(champion_split["seed"]), test_fraction=float(champion_split["test_fraction"])
        )
    train_mean = rows.where(~flag).agg(F.avg(LABEL_COLUMN)).collect()[0][0]
    table: pd.DataFrame = rows.where(both).drop("tweet_id").toPandas()
    labels = table[LABEL_COLUMN].to_numpy(dtype=float)
    baseline_rmse = score_rmse(labels, float(train_mean or 0.0))
    # a run registered before keeps its version; a new one is compared before it has one
    version = contenders.challenger_version or UNREGISTERED
    challenger = Scored(version, _rmse_of(contenders.challenger, table, labels))
    champion = None
    already_champion = contenders.challenger_version is not None and (
        contenders.champion_version == contenders.challenger_version
    )
    if already_champion:
        champion = challenger
    elif contenders.champion is not None and contenders.champion_version is not None:
        champion = Scored(contenders.champion_version, _rmse_of(contenders.champion, table, labels))
    same_schema = contenders.champion is None or (
        _input_schema(contenders.challenger) == _input_schema(contenders.champion)
    )
    decision = decide_promotion(
        challenger,
        champion,
        baseline_rmse=baseline_rmse,
        comparison_rows=len(table),
        same_schema=same_schema,
        gate=gate,
    )
    if contenders.unknown_split:
        decision = replace(decision, reason=decision.reason + contenders.unknown_split)
    return Comparison(
        challenger_rmse=challenger.rmse,
        champion_rmse=None if champion in (None, challenger) else champion.rmse,
        baseline_rmse=baseline_rmse,
        comparison_rows=len(table),
        decision=decision,
    )


def _publish(
    client: MlflowClient,
    trained: TrainedModel,
    training_run: Run,
    contenders: Contenders,
    comparison: Comparison,
    config: PromoteSettings,
    experiment: str | None,
) -> PromotionResult:
    """Register the version (once per run), alias it challenger, move champion when promoted.

    In a DVC experiment the version is tagged with it instead, and no alias moves.
    """
    name = config.model_name
    columns = list(_input_schema(contenders.challenger))
    version, new = registry.ensure_version(
        client,
        name,
        trained.model_uri,
        trained.run_id,
        _version_tags(trained),
        _version_description(trained, training_run, columns),
    )
    registry.describe_model(client, name, _model_description())
    decision = comparison.decision
    if experiment is not None:
        _set_version_tag(client, name, version, DVC_EXPERIMENT_TAG, experiment)
        decision = experiment_outcome(decision, experiment)
    else:
        _set_alias(client, name, CHALLENGER, version)
    if decision.promoted and contenders.champion_version != version:
        registry.move_champion(
            client,
            name,
            version,
            action="promote",
            reason=decision.reason,
            challenger_rmse=comparison.challenger_rmse,
            champion_rmse=comparison.champion_rmse,
            comparison_rows=comparison.comparison_rows,
        )
    _set_version_tag(client, name, version, "tweetops.promotion", decision.reason)
    return PromotionResult(
        model_name=name,
        version=version,
        promoted=decision.promoted,
        reason=decision.reason,
        challenger_rmse=comparison.challenger_rmse,
        champion_version=contenders.champion_version,
        champion_rmse=comparison.champion_rmse,
        baseline_rmse=comparison.baseline_rmse,
        comparison_rows=comparison.comparison_rows,
        newly_registered=new,
        champion_after=registry.champion_version(client, name),
        experiment=experiment,
    )


def _rmse_of(model: PyFuncModel, table: pd.DataFrame, labels: np.ndarray) -> float:
    if len(table) == 0:
        return float("nan")
    predictions = np.asarray(model.predict(table.drop(columns=[LABEL_COLUMN])), dtype=float)
    return score_rmse(labels, predictions.reshape(-1))


def _load(model_uri: str) -> PyFuncModel:
    try:
        model: PyFuncModel = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:
        raise registry.registry_error(f"loading the model {model_uri}", exc) from None
    return model


def _input_schema(model: PyFuncModel) -> dict[str, str]:
    """The model's input columns and their kinds (as logged, else from its signature)."""
    logged = model.metadata
    kinds = (logged.metadata or {}).get("input_kinds")
    if kinds:
        return dict(kinds)
    signature = logged.signature
    inputs = signature.inputs.to_dict() if signature and signature.inputs else []
    return {column.get("name", ""): str(column.get("type")) for column in inputs}


def split_of(client: MlflowClient, name: str, version: str) -> dict[str, float | int] | None:
    """The split settings of the run that trained `version` (version tags, else run params).

    None when neither says (a version registered by hand, a run without the params).
    """
    tags = client.get_model_version(name, version).tags or {}
    if all(key in tags for key in SPLIT_TAGS):
        return {"seed": int(tags[SPLIT_TAGS[0]]), "test_fraction": float(tags[SPLIT_TAGS[1]])}
    run_id = client.get_model_version(name, version).run_id
    if not run_id:  # registered from a path, not from a run
        return None
    try:
        params = client.get_run(run_id).data.params
        return {
            "seed": int(params["train.seed"]),
            "test_fraction": float(params["train.test_fraction"]),
        }
    except (MlflowException, KeyError, ValueError):
        return None


def _live_training_run(client: MlflowClient, run_id: str) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise TweetopsError(
                f"Training run {run_id} no longer exists in the tracking store "
                f"(deleted for good): run `tweetops train` again."
            ) from None
        raise registry.registry_error(f"reading training run {run_id}", exc) from None
    if run.info.lifecycle_stage == "deleted":
        raise TweetopsError(
            f"Training run {run_id} is deleted: restore it with `mlflow runs "
            f"restore --run-id {run_id}` or run `tweetops train` again."
        )
    return run


def _version_tags(trained: TrainedModel) -> dict[str, str]:
    return {
        registry.TRAIN_RUN_TAG: trained.run_id,
        SPLIT_TAGS[0]: str(trained.split.seed),
        SPLIT_TAGS[1]: str(trained.split.test_fraction),
        "tweetops.split.method": SPLIT_METHOD,
        "tweetops.spark_model_uri": trained.spark_model_uri,
    }


def _model_description() -> str:
    return (
        "Predicts a tweet's engagement, log1p(retweets + replies + likes + quotes), from one "
        f"row of raw input columns ({', '.join(MODEL_INPUT_COLUMNS)}). Each version is a "
        "Spark ML random forest exported to a JVM-free python_function (numpy); the Spark "
        "pipeline itself is logged in the same training run. Alias `champion` is served."
    )


def _version_description(trained: TrainedModel, training_run: Run, columns: list[str]) -> str:
    md5 = training_run.data.tags.get("tweetops.data.training.dvc_md5", "unknown")
    rmse = trained.metrics.get("rmse")
    score = f"; test rmse {rmse:.4f} on {trained.test_rows} rows" if rmse is not None else ""
    return (
        f"Engagement forest from training run {trained.run_id}, trained on "
        f"{trained.split.training_rows_dir} (DVC md5 {md5}), {trained.train_rows} training rows"
        f"{score}; input columns {', '.join(columns)}; Spark model "
        f"{trained.spark_model_uri or 'not logged'}."
    )


def _set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    try:
        client.set_registered_model_alias(name, alias, version)
    except MlflowException as exc:
        raise registry.registry_error(f"setting {alias} of {name}", exc) from None


def _set_version_tag(client: MlflowClient, name: str, version: str, key: str, value: str) -> None:
    try:
        client.set_model_version_tag(name, version, key, value)
    except MlflowException as exc:
        raise registry.registry_error(f"tagging {name} v{version}", exc) from None
