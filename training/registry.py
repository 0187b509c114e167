"""The model registry: version names, deployment to A/B traffic slices, rollback, and performance per version.

Traffic: challengers hold the percentage they were deployed with; the champion gets the rest
(100 − the challengers' sum). At most one champion per kind (a database constraint). Every change runs in one
transaction with the kind's deployed rows locked, so two operators deploying at once cannot oversell traffic.

Performance: ``performance_by_version`` rolls the outcome labels up live (all organizations', or one
organization's), with deltas against the kind's champion on the same labels; ``performance_refresh_deployed``
stores the all-organizations rollup on every deployed version (``ModelVersion.performance``) after the daily
promotion check.
"""

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import BigIntegerField, Count, Q, Sum
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from outcomes.models import OutcomeLabel
from outcomes.selectors import wilson_interval
from training.models import ModelVersion

Kind, Role, Status = ModelVersion.Kind, ModelVersion.Role, ModelVersion.Status
VERSION_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
FIRST_VERSION = "v1.0.0"
CREATE_ATTEMPTS = 5
DEPLOYABLE = (Status.READY, Status.DEPLOYED, Status.RETIRED)  # a retired version may serve again
# The seed's performance score: closing matters most, then meetings, then replies.
SCORE_WEIGHTS = {"close_rate": 0.5, "meeting_rate": 0.3, "reply_rate": 0.2}
COUNTS = {
    "delivered": Q(delivered=True),
    "replies": Q(replied=True),
    "positive_replies": Q(replied=True) & (Q(interest_signal=True) | Q(sentiment_label="positive")),
    "meetings": Q(meeting_booked=True),
    "deals": Q(deal_closed=True),
    "unsubscribes": Q(unsubscribed=True),
    "spam_reports": Q(spam_reported=True),
}
RATES = {
    "delivery_rate": "delivered",
    "reply_rate": "replies",
    "positive_reply_rate": "positive_replies",
    "meeting_rate": "meetings",
    "close_rate": "deals",
    "unsubscribe_rate": "unsubscribes",
    "spam_rate": "spam_reports",
}
DELTA_RATES = ("reply_rate", "positive_reply_rate", "meeting_rate", "close_rate", "score")

_generation = 0


def registry_generation() -> int:
    """Bumped whenever deployments change in this process; the traffic split's cache is keyed by it."""
    return _generation


def _deployments_changed() -> None:
    global _generation
    _generation += 1


# --- Versions ------------------------------------------------------------------------------------------------


def _parse(version: str) -> tuple[int, int, int] | None:
    match = VERSION_RE.match(version or "")
    return tuple(int(part) for part in match.groups()) if match else None


def next_version(kind: str) -> str:
    """The kind's highest "vX.Y.Z" with the minor bumped (v2.1.0 → v2.2.0); "v1.0.0" for the first.

    Compared as numbers, so v1.10.0 follows v1.9.0. Two trainers finishing at once can compute the same name;
    ``model_version_create`` lets the unique constraint decide and retries.
    """
    parsed = [_parse(name) for name in ModelVersion.objects.filter(kind=kind).values_list("version", flat=True)]
    parsed = [p for p in parsed if p]
    if not parsed:
        return FIRST_VERSION
    major, minor, _ = max(parsed)
    return f"v{major}.{minor + 1}.0"


def model_version_create(*, kind: str, backend: str, **fields) -> ModelVersion:
    """A new version row named by ``next_version``; a name taken meanwhile by another process is retried."""
    for attempt in range(CREATE_ATTEMPTS):
        version = ModelVersion(kind=kind, backend=backend, version=next_version(kind), **fields)
        # Uniqueness is the database's to decide (that is the retry below); everything else is checked here.
        version.full_clean(validate_unique=False, validate_constraints=False)
        try:
            with transaction.atomic():
                version.save()
            return version
        except IntegrityError:
            if attempt == CREATE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def active_versions(kind: str | None) -> list[ModelVersion]:
    """Deployed versions that receive traffic (of one kind, or of all with None): per kind the champion first,
    then the challengers by id."""
    versions = ModelVersion.objects.filter(status=Status.DEPLOYED, traffic_percentage__gt=0).order_by("kind", "id")
    if kind is not None:
        versions = versions.filter(kind=kind)
    return sorted(versions, key=lambda v: (v.kind, v.ab_role != Role.CHAMPION))


# --- Deployment ----------------------------------------------------------------------------------------------


def _lock(version: ModelVersion) -> tuple[ModelVersion, list[ModelVersion]]:
    """The version and the kind's other deployed versions, row-locked until the transaction ends."""
    locked = list(
        ModelVersion.objects.select_for_update()
        .filter(Q(pk=version.pk) | Q(kind=version.kind, status=Status.DEPLOYED))
        .order_by("id")
    )
    target = next((v for v in locked if v.pk == version.pk), None)
    if target is None:
        raise ValidationError({"version": f"Model version {version.pk} does not exist."})
    return target, [v for v in locked if v.pk != version.pk]


def _save(version: ModelVersion, *fields: str) -> None:
    version.full_clean()
    version.save(update_fields=list(fields))


def _retire(version: ModelVersion, now) -> None:
    version.status, version.ab_role, version.traffic_percentage, version.retired_at = Status.RETIRED, "", 0.0, now
    _save(version, "status", "ab_role", "traffic_percentage", "retired_at")


def _rebalance(deployed: list[ModelVersion]) -> None:
    """The champion (if any) gets what the challengers leave."""
    champion = next((v for v in deployed if v.status == Status.DEPLOYED and v.ab_role == Role.CHAMPION), None)
    if champion is None:
        return
    taken = sum(v.traffic_percentage for v in deployed if v.status == Status.DEPLOYED and v.ab_role == Role.CHALLENGER)
    champion.traffic_percentage = round(max(0.0, 100.0 - taken), 4)
    _save(champion, "traffic_percentage")


def _check_servable(version: ModelVersion) -> None:
    if version.status not in DEPLOYABLE:
        raise ValidationError({"version": f"A {version.status} version cannot be deployed."})
    if version.backend == ModelVersion.Backend.LOCAL and not version.artifact_path:
        raise ValidationError({"version": "A local model needs its artifact_path before it can serve traffic."})
    if version.backend == ModelVersion.Backend.OPENAI and not version.provider_model_id:
        raise ValidationError({"version": "An OpenAI model needs its provider_model_id before it can serve traffic."})


def _check_role(version: ModelVersion, role: str) -> None:
    """The champion serves whatever the challengers leave: made a challenger, it would leave its kind without a
    champion (and the rest of the leads without a model). It stays champion until another version replaces it."""
    if role == Role.CHALLENGER and version.status == Status.DEPLOYED and version.ab_role == Role.CHAMPION:
        raise ValidationError(
            {
                "traffic_percentage": (
                    f"{version.version} is the {version.kind} champion: it serves what the challengers leave "
                    f"({version.traffic_percentage}%) and cannot become a challenger. Deploy it with 100, or deploy "
                    "another version as champion to replace it."
                )
            }
        )


def _traffic_for(role: str, traffic_percentage: float | None, others: float) -> float:
    free = round(100.0 - others, 4)
    if role == Role.CHAMPION:
        return free  # whatever was asked: the champion always serves what the challengers leave
    if traffic_percentage is None or not 0 < traffic_percentage <= free:
        raise ValidationError(
            {"traffic_percentage": f"A challenger takes more than 0% and at most {free}% (challengers: {others}%)."}
        )
    return float(traffic_percentage)


def _on_change() -> None:
    _deployments_changed()
    transaction.on_commit(_deployments_changed)


def model_servable_check(*, version: ModelVersion) -> None:
    """A local policy whose artifact does not load would serve nothing: every lead of its arm would silently fall
    back. Checked with the personalizer's own loader; what the registry refuses anyway (a failed version, no
    artifact) is left to it, so its reason is the one given."""
    if version.kind != ModelVersion.Kind.POLICY or version.backend != ModelVersion.Backend.LOCAL:
        return
    if version.status not in DEPLOYABLE or not version.artifact_path:
        return
    from training.policy import PolicyModel  # scikit-learn: loaded only where a policy is

    try:
        PolicyModel.load(version)
    except Exception as exc:  # PolicyUnavailable, or whatever a damaged joblib file raises
        raise ValidationError({"version": f"The policy artifact cannot be loaded: {exc}"}) from exc


def model_deploy(*, version: ModelVersion, role: str, traffic_percentage: float | None = None) -> ModelVersion:
    """Serve ``version`` as the kind's champion or as a challenger with ``traffic_percentage`` of the leads.

    ``traffic_percentage`` is read for challengers only (the champion gets what they leave, so promoting with
    100 while another challenger runs is fine). A new champion retires the one it replaces (remembered in its
    ``training_metadata["replaced_champion_id"]``, so ``model_rollback`` can restore it). The champion itself
    cannot be redeployed as a challenger (``_check_role``).
    """
    if role not in (Role.CHAMPION, Role.CHALLENGER):
        raise ValidationError({"role": f"Use {Role.CHAMPION} or {Role.CHALLENGER}."})
    with transaction.atomic():
        version, deployed = _lock(version)
        _check_servable(version)
        _check_role(version, role)
        others = sum(v.traffic_percentage for v in deployed if v.ab_role == Role.CHALLENGER)
        version.traffic_percentage = _traffic_for(role, traffic_percentage, others)
        now = timezone.now()
        champion = next((v for v in deployed if v.ab_role == Role.CHAMPION), None)
        if role == Role.CHAMPION and champion is not None:
            _retire(champion, now)  # first, so the one-champion constraint never sees two
            version.training_metadata = {**version.training_metadata, "replaced_champion_id": champion.pk}
        if version.status != Status.DEPLOYED:
            version.deployed_at = now
        version.status, version.ab_role, version.retired_at = Status.DEPLOYED, role, None
        _save(version, "status", "ab_role", "traffic_percentage", "deployed_at", "retired_at", "training_metadata")
        _rebalance([*deployed, version])
        _on_change()
    return version


def model_retire(*, version: ModelVersion) -> ModelVersion:
    """Take the version out of service; a retired challenger's traffic goes back to the champion."""
    with transaction.atomic():
        version, deployed = _lock(version)
        if version.status == Status.RETIRED:
            return version
        _retire(version, timezone.now())
        _rebalance(deployed)
        _on_change()
    return version


def model_rollback(*, version: ModelVersion) -> ModelVersion | None:
    """Retire a deployed version and give its traffic back; returns the champion now serving (or None).

    Rolling back a champion restores the champion it replaced; rolling back a challenger hands its slice to the
    current champion (which is then back at 100% unless other challengers are running).
    """
    with transaction.atomic():
        version, deployed = _lock(version)
        if version.status != Status.DEPLOYED:
            raise ValidationError(
                {"version": f"Only a deployed version can be rolled back, not a {version.status} one."}
            )
        now = timezone.now()
        was_champion = version.ab_role == Role.CHAMPION
        _retire(version, now)
        if was_champion:
            deployed = [v for v in deployed if v.ab_role != Role.CHAMPION]
            previous = _restorable(version.training_metadata.get("replaced_champion_id"), kind=version.kind)
            if previous is not None:
                previous.status, previous.ab_role, previous.retired_at, previous.deployed_at = (
                    Status.DEPLOYED, Role.CHAMPION, None, now
                )  # fmt: skip
                _save(previous, "status", "ab_role", "retired_at", "deployed_at")
                deployed.append(previous)
        _rebalance(deployed)
        _on_change()
    return next((v for v in deployed if v.ab_role == Role.CHAMPION and v.status == Status.DEPLOYED), None)


def _restorable(version_id, *, kind: str) -> ModelVersion | None:
    if not version_id:
        return None
    return (
        ModelVersion.objects.select_for_update()
        .filter(pk=version_id, kind=kind, status__in=(Status.RETIRED, Status.READY))
        .first()
    )


# --- Performance ---------------------------------------------------------------------------------------------


def _policy_key():
    """The policy version the personalizer recorded, as a number (None on messages no policy chose)."""
    policy = KeyTransform("policy", KeyTransform("PersonalizerAgent", "agent_decisions"))
    return Cast(KeyTextTransform("version", policy), BigIntegerField())


def attributed_to(version: ModelVersion) -> Q:
    """The outcome labels a version produced: its FK, and for a policy also the messages whose strategy it chose
    while an LLM writer wrote the text (the FK then names the writer)."""
    scope = Q(model_version_id=version.pk)
    if version.kind == Kind.POLICY:
        scope |= Q(agent_decisions__PersonalizerAgent__policy__version=version.pk)
    return scope


def _aggregates() -> dict:
    """Counts (and revenue) as aggregate expressions."""
    aggregates = {"messages": Count("id")}
    aggregates.update({name: Count("id", filter=condition) for name, condition in COUNTS.items()})
    aggregates["revenue"] = Sum("deal_value", filter=Q(deal_closed=True))
    return aggregates


def _figures(counts: dict) -> dict:
    """Counts plus rates over messages sent, the reply rate's 95% interval, and the seed's performance score."""
    messages = counts["messages"]
    figures = {"messages": messages, **{name: counts[name] for name in COUNTS}}
    revenue = float(counts["revenue"] or 0)
    figures["revenue"] = round(revenue, 2)
    for rate, count in RATES.items():
        figures[rate] = round(counts[count] / messages, 4) if messages else 0.0
    figures["revenue_per_message"] = round(revenue / messages, 2) if messages else 0.0
    figures["reply_rate_ci95"] = list(wilson_interval(counts["replies"], messages))
    figures["score"] = round(sum(figures[rate] * weight for rate, weight in SCORE_WEIGHTS.items()), 4)
    return figures


def _versus(figures: dict, champion: ModelVersion, theirs: dict) -> dict:
    """Absolute rate differences against the champion's figures (0.02 = two points better)."""
    return {
        "champion_id": champion.pk,
        "champion_version": champion.version,
        "champion_messages": theirs["messages"],
        **{rate: round(figures[rate] - theirs[rate], 4) for rate in DELTA_RATES},
    }


def _store(version: ModelVersion, figures: dict) -> dict:
    figures = {**figures, "rolled_up_at": timezone.now().isoformat()}
    ModelVersion.objects.filter(pk=version.pk).update(performance=figures)
    version.performance = figures
    return figures


def performance_rollup(*, version: ModelVersion) -> dict:
    """Roll the version's outcome labels (every organization's) up into ``performance``, with its deltas against
    the champion (``performance_by_version``; absent when it is the champion or there is none)."""
    return _store(version, performance_by_version([version])[version.pk])


def performance_refresh_deployed() -> dict[int, dict]:
    """Roll up every deployed version's performance (all organizations) into ``ModelVersion.performance``.

    Run at the end of the daily promotion check (training/tasks.py), after the promotions, so the deltas are
    against the champion that now serves. One grouped query per kind.
    """
    deployed = list(ModelVersion.objects.filter(status=Status.DEPLOYED).order_by("kind", "id"))
    figures = performance_by_version(deployed)
    return {version.pk: _store(version, figures[version.pk]) for version in deployed}


def _no_counts() -> dict:
    return {"messages": 0, "revenue": None, **dict.fromkeys(COUNTS, 0)}


def _counts_by_version(kind: str, ids: list[int], *, organization_id: int | None = None) -> dict[int, dict]:
    """Per version of one kind, in one grouped query; a policy is credited for the strategies it chose.
    ``organization_id`` limits the labels to one organization's."""
    arm = Cast("model_version_id", BigIntegerField())
    if kind == Kind.POLICY:
        arm = Coalesce(_policy_key(), arm)
    labels = OutcomeLabel.objects.all()
    if organization_id is not None:
        labels = labels.filter(organization_id=organization_id)
    rows = labels.annotate(arm=arm).filter(arm__in=ids).values("arm").annotate(**_aggregates()).order_by()
    return {row.pop("arm"): row for row in rows}


def performance_by_version(versions: list[ModelVersion], *, organization_id: int | None = None) -> dict[int, dict]:
    """Live figures per version, with ``vs_champion`` (deltas against the kind's champion on the same labels;
    None for the champion itself, or when the kind has none): one grouped query per kind.

    ``organization_id`` rolls up one organization's labels only (what a non-staff caller may see: the registry
    serves every organization, but their revenue is their own); None rolls up every organization's.
    """
    if not versions:
        return {}
    champions = {v.kind: v for v in ModelVersion.objects.filter(ab_role=Role.CHAMPION, status=Status.DEPLOYED)}
    result = {}
    for kind in sorted({version.kind for version in versions}):
        of_kind = [version for version in versions if version.kind == kind]
        champion = champions.get(kind)
        ids = {version.pk for version in of_kind} | ({champion.pk} if champion else set())
        counts = _counts_by_version(kind, sorted(ids), organization_id=organization_id)
        theirs = _figures(counts.get(champion.pk, _no_counts())) if champion else None
        for version in of_kind:
            figures = _figures(counts.get(version.pk, _no_counts()))
            measured = champion is not None and champion.pk != version.pk
            figures["vs_champion"] = _versus(figures, champion, theirs) if measured else None
            result[version.pk] = figures
    return result


def leaderboard(kind: str | None = None, *, organization_id: int | None = None) -> list[dict]:
    """Every version that served or can serve (not training or failed), best score first, live from the labels
    (every organization's, or one organization's), each with its deltas against its kind's champion."""
    versions = ModelVersion.objects.exclude(status__in=(Status.TRAINING, Status.FAILED))
    if kind:
        versions = versions.filter(kind=kind)
    versions = list(versions)
    figures = performance_by_version(versions, organization_id=organization_id)
    board = [{**_identity(version), **figures[version.pk]} for version in versions]
    board.sort(key=lambda row: (-row["score"], -row["messages"], -row["id"]))
    for rank, row in enumerate(board, start=1):
        row["rank"] = rank
    return board


def _identity(version: ModelVersion) -> dict:
    return {
        "id": version.pk,
        "kind": version.kind,
        "version": version.version,
        "backend": version.backend,
        "status": version.status,
        "ab_role": version.ab_role,
        "traffic_percentage": version.traffic_percentage,
        "deployed_at": version.deployed_at.isoformat() if version.deployed_at else None,
    }
