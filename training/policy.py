"""The local policy model: the chance that a message gets a positive outcome, from lead context × strategy.

Two stages (``TwoStageModel``), both logistic regressions with scikit-learn on one-hot lead and strategy
columns plus crossed columns (framework × sector, tone × seniority band, …): the chance that a person responds
at all, learned from every sent message, times the chance that a response is positive (label =
``training_label`` is positive), learned from the responses and weighted by the training weights. Positive
outcomes are a few in a hundred sends; responses are about twice as many and move with the strategy the same
way, so splitting the chance in two learns a strategy's effect from twice the events. The crosses carry the
interactions a strategy choice needs (PAS may work for executives and not for engineers) while the model stays
small, fast and well calibrated on the few thousand rows an organization has; a boosted-tree model would find
interactions itself but needs more data and calibrates worse.

Every strategy column crossed with the coarse levels of industry and seniority (sector, band) is always in the
model (``BASE_CROSSES``): without them it could not choose a different strategy for any segment. Finer crosses
(the industry itself, company size, send hour, …) are chosen per training from the organization's own data
(``model_select``): on a few thousand labels the ones that do not matter only add noise (each is dozens of
columns), so they are added one at a time, keeping each only while it lowers the cross-validated log loss by
more than chance would (one standard error of the paired per-row savings). The choice is stored with the model.

Evaluation is on a held-out split chosen by lead (a hash), so one lead's messages never sit on both sides.
The artifact is our own joblib file under VAR_DIR/models; it is only ever loaded from there.
"""

import datetime as dt
import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from agents.models import Campaign, Lead
from outcomes.models import OutcomeLabel
from outcomes.selectors import without_opted_out
from training import features
from training.models import ModelVersion, TrainingRun
from training.registry import model_version_create
from training.split import arm_for, bucket, experiment_for

logger = logging.getLogger("rex.training")

VALIDATION_PERCENTAGE = 20
MIN_CLASS_EXAMPLES = 5  # of each class in the training split: fewer teaches the model nothing
MIN_CATEGORY_COUNT = 3  # rarer categories (an industry seen twice) share one "infrequent" column
REGULARISATION_C = 1.0  # while crosses are selected; the final C is chosen from REGULARISATION_GRID
REGULARISATION_GRID = (0.1, 0.3, 1.0, 3.0)
SELECTION_FOLDS = 5
# A cross is kept only if it lowers the cross-validated log loss by at least this much per example: a cross of
# pure noise lowers the training loss a little by chance, the held-out folds much less, often not at all.
MIN_LOG_LOSS_GAIN = 0.0002
# Always in the model: each strategy column crossed with the coarse levels of industry and seniority. They are
# few columns (four frameworks × a dozen sectors), and without them a linear model cannot choose a different
# strategy for any segment at all; regularisation keeps them small until the data says otherwise.
BASE_CROSSES = tuple((strategy, level) for strategy in ("framework", "tone") for level in ("sector", "seniority_band"))
MAX_ADDED_CROSSES = 4
SELECTION_Z = 1.0
CALIBRATION_BINS = 10
# Exploration shrinks as the model learns from more labels: EXPLORATION_SCALE / √examples, within these bounds
# (0.2 at 2,500 labels, 0.1 at 10,000, the minimum from 40,000).
EXPLORATION_MIN, EXPLORATION_MAX, EXPLORATION_SCALE = 0.05, 0.25, 10.0
LOADED_MODELS_KEPT = 8
LABEL_FIELDS = (
    "id",
    "lead_id",
    "framework",
    "tone",
    "channel",
    "sent_at",
    "lead_context",
    "lead_industry",
    "lead_role",
    "company_size",
    "icp_score",
    "training_label",
    "training_weight",
    "replied",
)


class PolicyUnavailable(Exception):
    """The deployed policy's artifact cannot be used (missing, outside VAR_DIR/models, other feature set)."""


# --- Data ----------------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    contexts: list[dict]
    labels: np.ndarray  # 1 = positive outcome
    weights: np.ndarray  # training weights, class-balanced (see ``balanced_weights``)
    validation: np.ndarray  # True = held out for evaluation
    split: str = "lead"  # how the held-out rows were chosen: by lead, or by row when too few leads
    groups: np.ndarray | None = None  # the lead of each row: cross-validation folds keep a lead on one side
    responded: np.ndarray | None = None  # 1 = a person answered (replied, or a positive outcome without a reply)

    def responses(self) -> np.ndarray:
        return self.labels if self.responded is None else np.maximum(self.responded, self.labels)


def balanced_weights(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Training weights rescaled so each class keeps its real count as its total weight.

    The weights rank examples within a class (a closed deal teaches more than an interested reply), but raw,
    they would make positives (weights 3–10) outweigh negatives (0.5–2) and inflate every probability. Kept
    per class, the predicted probability stays an honest outcome rate, which the reviver shows to people.
    """
    balanced = np.asarray(weights, dtype=float).copy()
    for value in (0, 1):
        mask = labels == value
        total = balanced[mask].sum()
        if total > 0:
            balanced[mask] *= mask.sum() / total
    return balanced


def dataset_load(*, organization_id: int | None = None) -> Dataset:
    """Every settled sent message that had a strategy (leads who opted out left out), streamed from the database
    (``.values()``, no model instances). Settled: sent at least TRAINING_SETTLE_HOURS ago, whatever came back;
    counting only the fresh messages that already have an answer would inflate the newest strategies."""
    settled = timezone.now() - dt.timedelta(hours=settings.TRAINING_SETTLE_HOURS)
    queryset = without_opted_out(
        OutcomeLabel.objects.filter(sent_at__isnull=False, sent_at__lte=settled).exclude(framework="").exclude(tone="")
    )
    if organization_id is not None:
        queryset = queryset.filter(organization_id=organization_id)
    contexts, labels, weights, lead_ids, row_ids, responded = [], [], [], [], [], []
    for row in queryset.order_by("id").values(*LABEL_FIELDS).iterator(chunk_size=2000):
        contexts.append(features.label_context(row))
        labels.append(row["training_label"] == OutcomeLabel.Label.POSITIVE)
        weights.append(max(0.0, row["training_weight"]))
        lead_ids.append(row["lead_id"])
        row_ids.append(row["id"])
        responded.append(row["replied"])
    labels = np.asarray(labels, dtype=int)
    validation, split = held_out(labels, lead_ids=lead_ids, row_ids=row_ids)
    weights = balanced_weights(labels, np.asarray(weights))
    groups = np.asarray(lead_ids, dtype=np.int64)
    return Dataset(contexts, labels, weights, validation, split, groups, np.asarray(responded, dtype=int))


def _in_validation(key: str) -> bool:
    return bucket(key) < VALIDATION_PERCENTAGE * 100


def held_out(labels: np.ndarray, *, lead_ids: list[int], row_ids: list[int]) -> tuple[np.ndarray, str]:
    """The evaluation rows: a fifth of the leads (all their messages), so the model is judged on leads it never
    saw. When there are too few leads for that to leave both classes on both sides (a handful of leads with
    many messages each), a fifth of the rows instead, and the metrics say so."""
    by_lead = np.asarray([_in_validation(f"policy-validation:{lead_id}") for lead_id in lead_ids], dtype=bool)
    if _both_sides_usable(labels, by_lead):
        return by_lead, "lead"
    return np.asarray([_in_validation(f"policy-validation-row:{row_id}") for row_id in row_ids], dtype=bool), "row"


def _both_sides_usable(labels: np.ndarray, validation: np.ndarray) -> bool:
    train, held = labels[~validation], labels[validation]
    return min(int(train.sum()), int(len(train) - train.sum())) >= MIN_CLASS_EXAMPLES and 0 < held.sum() < len(held)


def not_enough_data(data: Dataset, *, min_examples: int) -> str:
    """Why this data cannot train a model, or "" when it can."""
    total, train = len(data.labels), data.labels[~data.validation]
    if total < min_examples:
        return f"{total} usable outcome labels; at least {min_examples} are needed."
    positives, negatives = int(train.sum()), int(len(train) - train.sum())
    if min(positives, negatives) < MIN_CLASS_EXAMPLES:
        return (
            f"The training split has {positives} positive and {negatives} other outcomes; "
            f"at least {MIN_CLASS_EXAMPLES} of each are needed."
        )
    return ""


# --- Model ---------------------------------------------------------------------------------------------------


def pipeline_build(*, crosses=(), regularisation: float = REGULARISATION_C):
    # scikit-learn is imported here, not at module level: the web and agent processes import this module for
    # ``policy_choose`` and only need scikit-learn once a model is loaded.
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    width = len(features.categorical_columns(crosses))
    categorical, numeric = list(range(width)), list(range(width, len(features.columns(crosses))))
    encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=MIN_CATEGORY_COUNT)
    columns = ColumnTransformer([("categories", encoder, categorical), ("numbers", StandardScaler(), numeric)])
    return Pipeline(
        [("columns", columns), ("model", LogisticRegression(C=regularisation, solver="newton-cholesky", max_iter=200))]
    )


# --- Model selection -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    crosses: tuple[tuple[str, str], ...]
    regularisation: float
    cv_log_loss: float
    steps: tuple[dict, ...]  # the selection path: each cross added and the log loss it reached


class _Design:
    """Every candidate column one-hot encoded once, so a candidate set of crosses is a cheap column stack."""

    def __init__(self, contexts: list[dict]):
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        crosses = features.CANDIDATE_CROSSES
        matrix = features.feature_matrix(contexts, crosses)
        names = features.columns(crosses)
        self.blocks = {}
        for index, name in enumerate(features.categorical_columns(crosses)):
            encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=MIN_CATEGORY_COUNT)
            self.blocks[name] = encoder.fit_transform(matrix[:, [index]]).tocsr()
        numeric = [names.index(name) for name in features.NUMERIC]
        self.numeric = StandardScaler().fit_transform(matrix[:, numeric].astype(float))

    def matrix(self, crosses):
        from scipy import sparse

        names = features.categorical_columns(crosses)
        return sparse.hstack([*(self.blocks[name] for name in names), sparse.csr_matrix(self.numeric)]).tocsr()


def _folds(groups: np.ndarray) -> np.ndarray:
    """A fold per row, by lead (a hash), so a lead's messages are never on both sides of a fold; by row when
    there are too few leads to fill the folds (like ``held_out``)."""
    if len(np.unique(groups)) < 4 * SELECTION_FOLDS:
        groups = np.arange(len(groups))
    return np.asarray([bucket(f"policy-fold:{group}") % SELECTION_FOLDS for group in groups])


@dataclass(frozen=True)
class _CVLoss:
    """Held-out log loss of every row (each fold predicted by the other four), weighted."""

    losses: np.ndarray  # weight × log loss per row; 0 for rows of a fold that could not be fitted
    weights: np.ndarray

    @property
    def mean(self) -> float:
        total = float(self.weights.sum())
        return float(self.losses.sum()) / total if total else math.inf

    def gain_over(self, other: "_CVLoss") -> tuple[float, float]:
        """(mean loss saved against ``other``, its standard error): the rows are paired, the same in both."""
        saved = other.losses - self.losses
        scale = float(self.weights.mean()) or 1.0
        return float(saved.mean()) / scale, float(saved.std(ddof=1)) / math.sqrt(len(saved)) / scale


def _cv_log_loss(design, labels, weights, folds, crosses, regularisation: float) -> _CVLoss:
    from sklearn.linear_model import LogisticRegression

    matrix = design.matrix(crosses)
    losses, used = np.zeros(len(labels)), np.zeros(len(labels))
    for fold in range(SELECTION_FOLDS):
        test = folds == fold
        train = ~test
        if not test.any() or len(np.unique(labels[train])) < 2:
            continue
        model = LogisticRegression(C=regularisation, solver="newton-cholesky", max_iter=200)
        model.fit(matrix[train], labels[train], sample_weight=weights[train])
        predicted = np.clip(model.predict_proba(matrix[test])[:, 1], 1e-6, 1 - 1e-6)
        y = labels[test]
        losses[test] = -weights[test] * (y * np.log(predicted) + (1 - y) * np.log(1 - predicted))
        used[test] = weights[test]
    return _CVLoss(losses, used)


def model_select(contexts: list[dict], labels: np.ndarray, weights: np.ndarray, groups: np.ndarray) -> ModelChoice:
    """``BASE_CROSSES``, then forward selection of more crosses by cross-validated log loss, then the
    regularisation for the chosen ones.

    Greedy: each round tries every remaining candidate cross and keeps the one that lowers the held-out log loss
    most, but only when the saving is clear of chance: at least ``SELECTION_Z`` standard errors of the per-row
    savings (the rows are paired, so the test is sharp) and ``MIN_LOG_LOSS_GAIN``. With two dozen candidates,
    some cross of pure noise always lowers the held-out loss a little; a policy that follows it sends the wrong
    framework to a whole segment.
    """
    design, folds = _Design(contexts), _folds(groups)
    score = lambda crosses, c=REGULARISATION_C: _cv_log_loss(design, labels, weights, folds, crosses, c)  # noqa: E731
    chosen: tuple = BASE_CROSSES
    best = score(chosen)
    if not math.isfinite(best.mean):  # no fold had both classes to learn from: nothing to choose between
        return ModelChoice(chosen, REGULARISATION_C, math.inf, ())
    steps = [{"cross": None, "cv_log_loss": round(best.mean, 5)}]
    while len(chosen) < len(BASE_CROSSES) + MAX_ADDED_CROSSES:
        tried = {cross: score((*chosen, cross)) for cross in features.CANDIDATE_CROSSES if cross not in chosen}
        if not tried:
            break
        cross = min(tried, key=lambda candidate: tried[candidate].mean)
        gain, error = tried[cross].gain_over(best)
        if gain < max(MIN_LOG_LOSS_GAIN, SELECTION_Z * error):
            break
        chosen, best = (*chosen, cross), tried[cross]
        steps.append({"cross": features.cross_name(cross), "cv_log_loss": round(best.mean, 5),
                      "gain": round(gain, 5), "standard_error": round(error, 5)})  # fmt: skip
    return ModelChoice(chosen, *_regularisation_select(score, chosen, best), tuple(steps))


def _regularisation_select(score, crosses, at_default: "_CVLoss") -> tuple[float, float]:
    """(C, its cross-validated log loss): the best of REGULARISATION_GRID for these crosses."""
    by_c = {c: (at_default.mean if c == REGULARISATION_C else score(crosses, c).mean) for c in REGULARISATION_GRID}
    regularisation = min(by_c, key=by_c.get)
    return regularisation, by_c[regularisation]


def calibration_bins(labels: np.ndarray, predicted: np.ndarray, *, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Equal-width bins of predicted probability: how many fell in each, what we predicted, what happened."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(predicted, edges[1:-1]), 0, bins - 1)
    rows = []
    for i in range(bins):
        mask = index == i
        if mask.any():
            rows.append(
                {
                    "low": round(float(edges[i]), 2),
                    "high": round(float(edges[i + 1]), 2),
                    "count": int(mask.sum()),
                    "mean_predicted": round(float(predicted[mask].mean()), 4),
                    "observed_rate": round(float(labels[mask].mean()), 4),
                }
            )
    return rows


def evaluate(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Held-out figures: AUC (None when the split has one class only), log loss, Brier score, calibration."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    if len(labels) == 0:
        return {"validation_examples": 0, "auc": None, "log_loss": None, "brier": None, "calibration": []}
    both = 0 < labels.sum() < len(labels)
    bins = calibration_bins(labels, predicted)
    return {
        "validation_examples": len(labels),
        "validation_positives": int(labels.sum()),
        "base_rate": round(float(labels.mean()), 4),
        "mean_predicted": round(float(predicted.mean()), 4),
        "auc": round(float(roc_auc_score(labels, predicted)), 4) if both else None,
        "log_loss": round(float(log_loss(labels, predicted, labels=[0, 1])), 4),
        "brier": round(float(brier_score_loss(labels, predicted)), 4),
        "calibration": bins,
        "expected_calibration_error": round(
            sum(b["count"] * abs(b["mean_predicted"] - b["observed_rate"]) for b in bins) / len(labels), 4
        ),
    }


def models_dir() -> Path:
    return Path(settings.VAR_DIR) / "models"


def artifact_save(pipeline, version: ModelVersion, *, crosses=()) -> str:
    """Write the artifact atomically (temporary file, then rename) so a reader never sees half a model."""
    import sklearn

    directory = models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"policy-{version.version}.joblib"
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    payload = {
        "pipeline": pipeline,
        "features_version": features.FEATURES_VERSION,
        "columns": list(features.columns(crosses)),
        "crosses": [list(cross) for cross in crosses],
        "sklearn_version": sklearn.__version__,
        "version": version.version,
    }
    joblib.dump(payload, temporary)
    os.replace(temporary, path)
    return str(path)


# --- Training ------------------------------------------------------------------------------------------------


def _event(run: TrainingRun, event: str, **details) -> None:
    run.events = [*run.events, {"at": timezone.now().isoformat(), "event": event, **details}]


def _finish(run: TrainingRun, status: str, *, error: str = "", **fields) -> None:
    run.status, run.error, run.finished_at = status, error, timezone.now()
    for name, value in fields.items():
        setattr(run, name, value)
    run.save()


def policy_train(*, run: TrainingRun, organization_id: int | None = None, min_examples: int = 50):
    """Train, evaluate and register a local policy model; the new ModelVersion (READY), or None without data.

    ``organization_id`` (default: the run's organization, else every organization) limits the labels used.
    Any failure marks the run (and a half-made version) failed and is raised again for the caller to log.
    """
    if (run.kind, run.backend) != (ModelVersion.Kind.POLICY, ModelVersion.Backend.LOCAL):
        raise ValidationError({"run": "policy_train trains local policy runs only."})
    organization_id = organization_id if organization_id is not None else run.organization_id
    run.status, run.started_at = TrainingRun.Status.TRAINING, run.started_at or timezone.now()
    run.save(update_fields=["status", "started_at"])
    version = None
    try:
        data = dataset_load(organization_id=organization_id)
        problem = not_enough_data(data, min_examples=min_examples)
        if problem:
            _event(run, "not_enough_data", examples=len(data.labels))
            _finish(run, TrainingRun.Status.NOT_ENOUGH_DATA, error=problem, train_examples=0, validation_examples=0)
            return None
        model, choice, metrics = _fit_and_evaluate(data)
        train_count = int((~data.validation).sum())
        metadata = {
            "run_id": run.pk,
            "organization_id": organization_id,
            "examples": len(data.labels),
            "positives": int(data.labels.sum()),
            "train_examples": train_count,
            "validation_examples": len(data.labels) - train_count,
            "features": list(features.columns(choice.crosses)),
            "features_version": features.FEATURES_VERSION,
            "crosses": [list(cross) for cross in choice.crosses],
            "regularisation_c": choice.regularisation,
            "model": "two stages (respond × positive given a response), each one-hot + crosses → logistic regression",
        }
        version = model_version_create(
            kind=ModelVersion.Kind.POLICY, backend=ModelVersion.Backend.LOCAL, training_metadata=metadata
        )
        version.artifact_path = artifact_save(model, version, crosses=choice.crosses)
        version.metrics = metrics
        version.status = ModelVersion.Status.READY
        version.save(update_fields=["artifact_path", "metrics", "status"])
        _event(run, "trained", version=version.version, auc=metrics.get("auc"))
        _finish(
            run,
            TrainingRun.Status.SUCCEEDED,
            model_version=version,
            train_examples=train_count,
            validation_examples=len(data.labels) - train_count,
        )
        return version
    except Exception as exc:
        if version is not None:
            ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.FAILED)
        _event(run, "failed", error=type(exc).__name__)
        _finish(run, TrainingRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise


def _fit_and_evaluate(data: Dataset):
    """Select crosses and C on the training split, evaluate on the held-out leads, then refit on every label.

    The crosses are chosen on the response stage (``TwoStageModel``), which has the most events to choose from.
    The held-out figures judge the choice on leads the selection never saw; the deployed model is the same choice
    refit on all labels, since a fifth more data is worth more to the policy than a model that is exactly the one
    measured.
    """
    train, held_out = ~data.validation, data.validation
    groups = data.groups if data.groups is not None else np.arange(len(data.labels))
    contexts = np.asarray(data.contexts, dtype=object)
    responses = data.responses()
    choice = model_select(list(contexts[train]), responses[train], np.ones(int(train.sum())), groups[train])
    answered = train & (responses == 1)
    interest_c = _interest_regularisation(data, answered, groups, choice.crosses)
    matrix = features.feature_matrix(data.contexts, choice.crosses)
    model = _two_stage_fit(matrix, data, train, choice, interest_c)
    predicted = _positive_probability(model, matrix[held_out]) if held_out.any() else np.empty(0)
    metrics = evaluate(data.labels[held_out], predicted)
    metrics["train_base_rate"] = round(float(data.labels[train].mean()), 4)
    metrics["split"] = data.split
    metrics["crosses"] = [list(cross) for cross in choice.crosses]
    metrics["regularisation_c"] = choice.regularisation
    metrics["cv_log_loss"] = round(choice.cv_log_loss, 5) if math.isfinite(choice.cv_log_loss) else None
    metrics["selection"] = list(choice.steps)
    metrics["stages"] = {
        "respond": {"examples": int(train.sum()), "rate": round(float(responses[train].mean()), 4),
                    "regularisation_c": choice.regularisation},
        "interest": {"examples": int(answered.sum()), "rate": round(float(data.labels[answered].mean()), 4),
                     "regularisation_c": interest_c},
    }  # fmt: skip
    if held_out.any():
        model = _two_stage_fit(matrix, data, np.ones(len(data.labels), dtype=bool), choice, interest_c)
    return model, choice, metrics


def _interest_regularisation(data: Dataset, answered: np.ndarray, groups: np.ndarray, crosses) -> float:
    """C of the interest stage, by cross-validation on the responses (REGULARISATION_C when they cannot tell)."""
    labels = data.labels[answered]
    if min(int(labels.sum()), int(len(labels) - labels.sum())) < MIN_CLASS_EXAMPLES:
        return REGULARISATION_C
    contexts = [context for context, used in zip(data.contexts, answered, strict=True) if used]
    design, folds = _Design(contexts), _folds(groups[answered])
    weights = balanced_weights(labels, data.weights[answered])
    score = lambda crosses, c=REGULARISATION_C: _cv_log_loss(design, labels, weights, folds, crosses, c)  # noqa: E731
    at_default = score(crosses)
    if not math.isfinite(at_default.mean):  # no fold had both classes
        return REGULARISATION_C
    return _regularisation_select(score, crosses, at_default)[0]


def _two_stage_fit(matrix, data: Dataset, rows: np.ndarray, choice: ModelChoice, interest_c: float):
    responses = data.responses()
    respond = pipeline_build(crosses=choice.crosses, regularisation=choice.regularisation)
    respond.fit(matrix[rows], responses[rows])
    answered = rows & (responses == 1)
    labels = data.labels[answered]
    if 0 < labels.sum() < len(labels):
        interest = pipeline_build(crosses=choice.crosses, regularisation=interest_c)
        interest.fit(matrix[answered], labels, model__sample_weight=balanced_weights(labels, data.weights[answered]))
    else:  # every response positive (or none): the stage is that rate
        interest = ConstantRate(float(labels.mean()) if len(labels) else 0.0)
    return TwoStageModel(respond, interest)


class ConstantRate:
    """A stage whose data has one class only: that rate for every row."""

    classes_ = np.array([0, 1])

    def __init__(self, rate: float):
        self.rate = rate

    def predict_proba(self, matrix) -> np.ndarray:
        rate = np.full(len(matrix), self.rate)
        return np.column_stack([1 - rate, rate])


class TwoStageModel:
    """P(positive) = P(a person responds) × P(the response is positive | they responded).

    Positive outcomes are rare (a few sends in a hundred), so a model of them alone learns a strategy's effect
    from very few events. Responses of any kind are about twice as common and move with the fit of the strategy
    the same way, so the first stage learns from all of them; the second learns, from the responses, which turn
    warm (the training weights rank them: a deal teaches more than an interested reply). Each stage is a
    pipeline of ``pipeline_build``; ``predict_proba`` has scikit-learn's shape.
    """

    classes_ = np.array([0, 1])

    def __init__(self, respond, interest):
        self.respond = respond
        self.interest = interest

    def predict_proba(self, matrix) -> np.ndarray:
        positive = _positive_probability(self.respond, matrix) * _positive_probability(self.interest, matrix)
        return np.column_stack([1 - positive, positive])


def _positive_probability(pipeline, matrix: np.ndarray) -> np.ndarray:
    column = list(pipeline.classes_).index(1)
    return pipeline.predict_proba(matrix)[:, column]


# --- Inference -----------------------------------------------------------------------------------------------


class PolicyModel:
    """A loaded policy artifact. ``load`` keeps the last few per process, by version id."""

    _loaded: dict[int, "PolicyModel"] = {}

    def __init__(self, version: ModelVersion, pipeline, crosses=()):
        self.version = version
        self.pipeline = pipeline
        self.crosses = tuple(tuple(cross) for cross in crosses)

    @classmethod
    def load(cls, version: ModelVersion) -> "PolicyModel":
        cached = cls._loaded.get(version.pk)
        if cached is not None and cached.version.artifact_path == version.artifact_path:
            return cached
        payload = _read_artifact(version.artifact_path)
        model = cls(version, payload["pipeline"], payload.get("crosses", ()))
        if len(cls._loaded) >= LOADED_MODELS_KEPT:
            cls._loaded.pop(next(iter(cls._loaded)))
        cls._loaded[version.pk] = model
        return model

    @classmethod
    def forget(cls) -> None:
        cls._loaded.clear()

    def predict(self, contexts: list[dict]) -> np.ndarray:
        """The probability of a positive outcome for each context (``features.label_context`` shape)."""
        if not contexts:
            return np.empty(0)
        return _positive_probability(self.pipeline, features.feature_matrix(contexts, self.crosses))

    def best_strategy(
        self, lead: Lead, candidates: list[dict], *, campaign: Campaign | None = None, now: dt.datetime | None = None
    ) -> tuple[dict, float, np.ndarray]:
        """(the candidate with the highest probability, that probability, every candidate's probability)."""
        if not candidates:
            raise ValueError("best_strategy needs at least one candidate strategy.")
        contexts = features.lead_contexts(
            lead=lead, strategies=candidates, now=now or timezone.now(), campaign=campaign
        )
        return self.best_of(candidates, contexts)

    def best_of(self, candidates: list[dict], contexts: list[dict]) -> tuple[dict, float, np.ndarray]:
        """``best_strategy`` on the candidates' contexts, already built (several models can score one build)."""
        scores = self.predict(contexts)
        best = int(np.argmax(scores))
        return candidates[best], float(scores[best]), scores


def _read_artifact(artifact_path: str) -> dict:
    root = models_dir().resolve()
    path = Path(artifact_path or "").resolve()
    # joblib files can run code when loaded: only read the ones our trainer wrote.
    if not artifact_path or not path.is_relative_to(root):
        raise PolicyUnavailable(f"The artifact {artifact_path!r} is not under {root}.")
    if not path.is_file():
        raise PolicyUnavailable(f"The artifact {artifact_path!r} does not exist.")
    payload = joblib.load(path)
    if payload.get("features_version") != features.FEATURES_VERSION:
        raise PolicyUnavailable(
            f"The artifact uses feature set {payload.get('features_version')}, not {features.FEATURES_VERSION}."
        )
    return payload


def _deployed_model(lead: Lead) -> PolicyModel | None:
    """The policy model of the lead's arm, or None (no policy in the arm, or its artifact is unusable)."""
    version = arm_for(lead_id=lead.pk, kind=ModelVersion.Kind.POLICY)
    if version is None:
        return None
    try:
        return PolicyModel.load(version)
    except PolicyUnavailable as exc:
        logger.warning("policy %s unavailable, falling back: %s", version.version, exc)
        return None


@dataclass(frozen=True)
class PolicyChoice:
    version: ModelVersion
    strategy: dict
    probability: float  # of the strategy used
    explored: bool  # True: a random candidate instead of the best one
    # Counterfactual logging for the A/B test (None when the lead's arm is not measured against another model):
    # whether the other arms would have sent this lead something different. See ``ab_trigger``.
    triggered: bool | None = None
    compared_with: tuple[int, ...] = ()


def exploration_rate(version: ModelVersion) -> float:
    """How often the version tries a random candidate: often while it has learned from few labels (its choices
    are still guesses, and the labels its exploration brings are the ones that teach the next version most),
    rarely once it has seen tens of thousands."""
    examples = int((version.training_metadata or {}).get("examples") or 0)
    if examples <= 0:
        return EXPLORATION_MAX
    return min(EXPLORATION_MAX, max(EXPLORATION_MIN, EXPLORATION_SCALE / math.sqrt(examples)))


def ab_trigger(
    *, model: PolicyModel, best: dict, draw: float, candidates: list[dict], contexts: list[dict]
) -> tuple[bool | None, tuple[int, ...]]:
    """Would this lead's message differ between the A/B arms? (triggered, the other arms' version ids)

    A lead whose arms would all send the same strategy carries no information about which model is better,
    only noise; the promotion check compares the arms on triggered leads only (a "triggered analysis", with
    the other arms' choices computed here, at send time, on the same candidate contexts). Triggered means no
    arm would explore for this lead (the exploration draw is above every arm's rate; the draw is the lead's,
    whatever its arm) and some other arm's best strategy differs. It depends on the lead and the deployed models
    only, never on the lead's arm, so within the triggered leads the arms stay randomly assigned and the
    comparison unbiased. None when an arm has no model (the baseline's choice is a sampler's, not computable
    here) or there is no other arm.
    """
    versions = [version for _, version in experiment_for(ModelVersion.Kind.POLICY).slices]
    others = [version for version in versions if version is None or version.pk != model.version.pk]
    if not others or None in others:
        return None, ()
    rates, differs = [exploration_rate(model.version)], False
    for version in others:
        try:
            rival = PolicyModel.load(version)
        except PolicyUnavailable:
            return None, ()
        rates.append(exploration_rate(version))
        differs = differs or rival.best_of(candidates, contexts)[0] != best
    return draw >= max(rates) and differs, tuple(sorted(version.pk for version in others))


def policy_choose(
    *, lead: Lead, candidates: list[dict], rng: random.Random, campaign: Campaign | None = None
) -> PolicyChoice | None:
    """The deployed policy's strategy for the lead, or None when the lead's arm has no usable policy.

    With probability ``exploration_rate`` a uniformly random candidate is used instead of the best, so
    strategies the model rates low still get messages and can prove it wrong.
    """
    model = _deployed_model(lead)
    if model is None:
        return None
    if not candidates:
        raise ValueError("policy_choose needs at least one candidate strategy.")
    contexts = features.lead_contexts(lead=lead, strategies=candidates, now=timezone.now(), campaign=campaign)
    best, probability, scores = model.best_of(candidates, contexts)
    draw = rng.random()
    explored = draw < exploration_rate(model.version)
    strategy = best
    if explored:
        index = rng.randrange(len(candidates))
        strategy, probability = candidates[index], float(scores[index])
    triggered, compared_with = ab_trigger(model=model, best=best, draw=draw, candidates=candidates, contexts=contexts)
    return PolicyChoice(model.version, strategy, round(probability, 4), explored, triggered, compared_with)


@dataclass(frozen=True)
class PolicyLift:
    version: ModelVersion
    probability: float  # of a positive outcome with the best candidate
    base_rate: float  # the positive rate of the labels the model was trained on

    @property
    def lift(self) -> float:
        """How much better than the organization's average send the policy expects this lead to do."""
        return self.probability / self.base_rate


def policy_best_lift(*, lead: Lead, candidates: list[dict]) -> PolicyLift | None:
    """The best candidate's probability under the lead's deployed policy and the policy's training base rate,
    or None without a usable policy (none in the lead's arm, or one that did not record its base rate)."""
    model = _deployed_model(lead)
    if model is None:
        return None
    base_rate = float((model.version.metrics or {}).get("train_base_rate") or 0.0)
    if base_rate <= 0.0:
        return None
    return PolicyLift(model.version, model.best_strategy(lead, candidates)[1], base_rate)
