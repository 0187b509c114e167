"""The model registry: version names, deployment and traffic, rollback, performance rollups, the leaderboard."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ModelVersionFactory, OrganizationFactory, OutcomeLabelFactory
from training import registry
from training.models import ModelVersion
from training.registry import (
    active_versions,
    leaderboard,
    model_deploy,
    model_retire,
    model_rollback,
    model_version_create,
    next_version,
    performance_by_version,
    performance_refresh_deployed,
    performance_rollup,
)
from training.split import split_cache_clear

pytestmark = pytest.mark.django_db

POLICY, WRITER = ModelVersion.Kind.POLICY, ModelVersion.Kind.MESSAGE_WRITER
CHAMPION, CHALLENGER = ModelVersion.Role.CHAMPION, ModelVersion.Role.CHALLENGER
DEPLOYED, RETIRED = ModelVersion.Status.DEPLOYED, ModelVersion.Status.RETIRED


@pytest.fixture(autouse=True)
def _fresh_split():
    split_cache_clear()
    yield
    split_cache_clear()


def _policy(**fields) -> ModelVersion:
    values = {"kind": POLICY, "backend": "local", "artifact_path": "/var/models/policy.joblib", **fields}
    return ModelVersionFactory(**values)


def _writer(**fields) -> ModelVersion:
    return ModelVersionFactory(kind=WRITER, backend="openai", provider_model_id="ft:gpt-4o:acme::x1", **fields)


def _state(version: ModelVersion) -> tuple:
    version.refresh_from_db()
    return version.status, version.ab_role, version.traffic_percentage


# --- Versions ------------------------------------------------------------------------------------------------


def test_versions_bump_the_minor_per_kind_independently():
    assert next_version(POLICY) == next_version(WRITER) == "v1.0.0"

    first = model_version_create(kind=POLICY, backend="local")
    second = model_version_create(kind=POLICY, backend="local")
    writer = model_version_create(kind=WRITER, backend="openai")

    assert (first.version, second.version, writer.version) == ("v1.0.0", "v1.1.0", "v1.0.0")
    assert next_version(POLICY) == "v1.2.0" and next_version(WRITER) == "v1.1.0"


def test_versions_compare_as_numbers_and_ignore_other_names():
    for name in ("v2.1.0", "v2.9.3", "v2.10.0", "legacy", "v3"):
        ModelVersionFactory(kind=WRITER, version=name)

    assert next_version(WRITER) == "v2.11.0"


def test_a_name_taken_meanwhile_is_retried(monkeypatch):
    model_version_create(kind=POLICY, backend="local")  # v1.0.0
    names = iter(["v1.0.0", "v1.1.0"])  # a second trainer computed the same name before our insert
    monkeypatch.setattr(registry, "next_version", lambda kind: next(names))

    version = model_version_create(kind=POLICY, backend="local")

    assert version.version == "v1.1.0"
    assert sorted(ModelVersion.objects.values_list("version", flat=True)) == ["v1.0.0", "v1.1.0"]


# --- Deployment ----------------------------------------------------------------------------------------------


def test_challengers_take_their_share_and_the_champion_the_rest():
    champion, first, second = _policy(), _policy(), _policy()

    model_deploy(version=champion, role=CHAMPION)
    model_deploy(version=first, role=CHALLENGER, traffic_percentage=10)
    model_deploy(version=second, role=CHALLENGER, traffic_percentage=5)

    assert _state(champion) == (DEPLOYED, CHAMPION, 85.0)
    assert _state(first) == (DEPLOYED, CHALLENGER, 10.0) and _state(second) == (DEPLOYED, CHALLENGER, 5.0)
    assert champion.deployed_at is not None
    assert active_versions(POLICY) == [champion, first, second]
    assert active_versions(WRITER) == []


def test_a_challenger_cannot_take_more_than_is_left():
    champion, first, second = _policy(), _policy(), _policy()
    model_deploy(version=champion, role=CHAMPION)
    model_deploy(version=first, role=CHALLENGER, traffic_percentage=60)

    with pytest.raises(ValidationError) as error:
        model_deploy(version=second, role=CHALLENGER, traffic_percentage=50)

    assert "traffic_percentage" in error.value.message_dict
    assert _state(second) == (ModelVersion.Status.READY, "", 0.0)
    assert _state(champion) == (DEPLOYED, CHAMPION, 40.0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"status": ModelVersion.Status.FAILED}, "version"),
        ({"status": ModelVersion.Status.TRAINING}, "version"),
        ({"artifact_path": ""}, "version"),
    ],
)
def test_only_servable_versions_deploy(fields, field):
    version = _policy(**fields)
    with pytest.raises(ValidationError) as error:
        model_deploy(version=version, role=CHAMPION)
    assert field in error.value.message_dict
    assert _state(version)[0] == fields.get("status", ModelVersion.Status.READY)


def test_an_unknown_role_is_refused():
    with pytest.raises(ValidationError) as error:
        model_deploy(version=_policy(), role="observer", traffic_percentage=10)
    assert "role" in error.value.message_dict


def test_promoting_a_challenger_retires_the_champion_and_rollback_restores_it():
    old, new = _policy(), _policy()
    model_deploy(version=old, role=CHAMPION)
    model_deploy(version=new, role=CHALLENGER, traffic_percentage=10)

    model_deploy(version=new, role=CHAMPION, traffic_percentage=100)

    assert _state(new) == (DEPLOYED, CHAMPION, 100.0)
    assert _state(old) == (RETIRED, "", 0.0) and old.retired_at is not None
    assert new.training_metadata["replaced_champion_id"] == old.pk

    restored = model_rollback(version=new)

    assert restored == old
    assert _state(old) == (DEPLOYED, CHAMPION, 100.0) and old.retired_at is None
    assert _state(new) == (RETIRED, "", 0.0)
    assert active_versions(POLICY) == [old]


def test_rolling_back_a_challenger_gives_its_traffic_back_to_the_champion():
    champion, challenger = _policy(), _policy()
    model_deploy(version=champion, role=CHAMPION)
    model_deploy(version=challenger, role=CHALLENGER, traffic_percentage=10)

    assert model_rollback(version=challenger) == champion

    assert _state(champion) == (DEPLOYED, CHAMPION, 100.0)
    assert _state(challenger) == (RETIRED, "", 0.0)


def test_rolling_back_the_first_champion_leaves_nothing_deployed():
    champion = _policy()
    model_deploy(version=champion, role=CHAMPION)

    assert model_rollback(version=champion) is None
    assert active_versions(POLICY) == []


def test_only_deployed_versions_roll_back():
    with pytest.raises(ValidationError):
        model_rollback(version=_policy())


def test_retiring_is_idempotent_and_rebalances():
    champion, challenger = _policy(), _policy()
    model_deploy(version=champion, role=CHAMPION)
    model_deploy(version=challenger, role=CHALLENGER, traffic_percentage=25)

    model_retire(version=challenger)
    model_retire(version=challenger)

    assert _state(challenger) == (RETIRED, "", 0.0)
    assert _state(champion) == (DEPLOYED, CHAMPION, 100.0)


@pytest.mark.parametrize("challengers", [0, 1])
def test_the_champion_cannot_be_made_a_challenger(challengers):
    champion = _policy()
    model_deploy(version=champion, role=CHAMPION)
    for _ in range(challengers):
        model_deploy(version=_policy(), role=CHALLENGER, traffic_percentage=10)
    before = _state(champion)

    with pytest.raises(ValidationError) as error:
        model_deploy(version=champion, role=CHALLENGER, traffic_percentage=10)

    assert "champion" in error.value.message_dict["traffic_percentage"][0]
    assert _state(champion) == before == (DEPLOYED, CHAMPION, 100.0 - 10 * challengers)
    # Redeploying it as the champion is fine (it keeps what the challengers leave).
    model_deploy(version=champion, role=CHAMPION, traffic_percentage=100)
    assert _state(champion) == before


def test_a_retired_version_can_serve_again():
    version = _policy(status=RETIRED)
    model_deploy(version=version, role=CHALLENGER, traffic_percentage=10)
    assert _state(version) == (DEPLOYED, CHALLENGER, 10.0)


# --- Performance ---------------------------------------------------------------------------------------------


def _labels(version, organization, n, **flags):
    for _ in range(n):
        OutcomeLabelFactory(message=None, organization=organization, model_version=version, **flags)


def _planted(organization, version, *, deals=0, meetings=0, positive=0, replies=0, quiet=0, unsub=0, spam=0):
    _labels(version, organization, deals, replied=True, meeting_booked=True, deal_closed=True, deal_value=Decimal(5000))
    _labels(version, organization, meetings, replied=True, meeting_booked=True, interest_signal=True)
    _labels(version, organization, positive, replied=True, sentiment_label="positive")
    _labels(version, organization, replies, replied=True)
    _labels(version, organization, quiet)
    _labels(version, organization, unsub, unsubscribed=True)
    _labels(version, organization, spam, delivered=False, spam_reported=True)


def test_rollup_counts_rates_and_deltas_against_the_champion():
    organization = OrganizationFactory()
    champion, challenger = _policy(), _policy()
    model_deploy(version=champion, role=CHAMPION)
    model_deploy(version=challenger, role=CHALLENGER, traffic_percentage=10)
    _planted(organization, challenger, deals=1, meetings=1, positive=1, replies=1, quiet=4, unsub=1, spam=1)
    _planted(organization, champion, replies=2, quiet=18)
    _planted(organization, None, deals=3, quiet=5)  # no model: counts for nobody

    with CaptureQueriesContext(connection) as queries:
        figures = performance_rollup(version=challenger)

    assert sum("outcomes_outcomelabel" in q["sql"] for q in queries.captured_queries) == 1
    assert {k: figures[k] for k in ("messages", "delivered", "replies", "positive_replies", "meetings", "deals")} == {
        "messages": 10,
        "delivered": 9,
        "replies": 4,
        "positive_replies": 2,
        "meetings": 2,
        "deals": 1,
    }
    assert (figures["revenue"], figures["unsubscribes"], figures["spam_reports"]) == (5000.0, 1, 1)
    assert (figures["reply_rate"], figures["meeting_rate"], figures["close_rate"]) == (0.4, 0.2, 0.1)
    assert figures["revenue_per_message"] == 500.0
    assert figures["score"] == round(0.5 * 0.1 + 0.3 * 0.2 + 0.2 * 0.4, 4)
    versus = figures["vs_champion"]
    assert (versus["champion_id"], versus["champion_messages"]) == (champion.pk, 20)
    assert versus["reply_rate"] == 0.3 and versus["meeting_rate"] == 0.2 and versus["close_rate"] == 0.1
    challenger.refresh_from_db()
    assert challenger.performance == figures

    assert performance_rollup(version=champion)["vs_champion"] is None  # the champion is the baseline


def test_a_policy_is_credited_for_strategies_it_chose_for_an_llm_writer():
    organization = OrganizationFactory()
    policy, writer = _policy(), _writer()
    decisions = {"PersonalizerAgent": {"model_version": writer.pk, "policy": {"version": policy.pk}}}
    OutcomeLabelFactory(
        message=None, organization=organization, model_version=writer, agent_decisions=decisions, replied=True
    )
    OutcomeLabelFactory(message=None, organization=organization, model_version=policy)

    assert performance_rollup(version=policy)["messages"] == 2
    assert performance_rollup(version=writer)["messages"] == 1
    board = {row["id"]: row for row in leaderboard()}
    assert (board[policy.pk]["messages"], board[policy.pk]["replies"]) == (2, 1)
    assert board[writer.pk]["messages"] == 1


def test_leaderboard_ranks_by_the_seed_score():
    organization = OrganizationFactory()
    closer, meeter, replier, idle = _policy(), _policy(), _policy(status=RETIRED), _policy()
    _policy(status=ModelVersion.Status.FAILED)
    writer = _writer()
    _planted(organization, closer, deals=2, quiet=8)  # 0.5 * 0.2 + 0.3 * 0.2 + 0.2 * 0.2 = 0.2
    _planted(organization, meeter, meetings=3, quiet=7)  # 0.3 * 0.3 + 0.2 * 0.3 = 0.15
    _planted(organization, replier, replies=5, quiet=5)  # 0.2 * 0.5 = 0.1
    _planted(organization, writer, replies=1, quiet=9)  # 0.02

    board = leaderboard(kind=POLICY)

    assert [row["id"] for row in board] == [closer.pk, meeter.pk, replier.pk, idle.pk]
    assert [row["rank"] for row in board] == [1, 2, 3, 4]
    assert [row["score"] for row in board] == [0.2, 0.15, 0.1, 0.0]
    assert board[0]["messages"] == 10 and board[0]["revenue"] == 10000.0 and board[0]["close_rate"] == 0.2
    assert board[2]["status"] == RETIRED
    everything = leaderboard()
    assert [row["id"] for row in everything] == [closer.pk, meeter.pk, replier.pk, writer.pk, idle.pk]


def _deployed_pair():
    champion, challenger = _policy(), _policy()
    model_deploy(version=champion, role=CHAMPION)
    model_deploy(version=challenger, role=CHALLENGER, traffic_percentage=10)
    return champion, challenger


def test_performance_by_version_rolls_up_one_organization_or_all_with_deltas():
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    champion, challenger = _deployed_pair()
    _planted(ours, challenger, deals=1, quiet=4)  # ours: challenger close rate 0.2, reply rate 0.2
    _planted(ours, champion, replies=1, quiet=9)  # ours: champion reply rate 0.1
    _planted(theirs, challenger, deals=5, quiet=5)  # another organization's revenue: 25,000
    _planted(theirs, champion, deals=10, quiet=10)

    with CaptureQueriesContext(connection) as queries:
        mine = performance_by_version([champion, challenger], organization_id=ours.pk)

    assert sum("outcomes_outcomelabel" in q["sql"] for q in queries.captured_queries) == 1  # one kind, one query
    assert (mine[challenger.pk]["messages"], mine[challenger.pk]["revenue"]) == (5, 5000.0)
    assert (mine[champion.pk]["messages"], mine[champion.pk]["deals"]) == (10, 0)
    versus = mine[challenger.pk]["vs_champion"]
    assert (versus["champion_id"], versus["champion_messages"]) == (champion.pk, 10)
    assert (versus["close_rate"], versus["reply_rate"]) == (0.2, 0.1)
    assert mine[champion.pk]["vs_champion"] is None

    everyone = performance_by_version([challenger])
    assert (everyone[challenger.pk]["messages"], everyone[challenger.pk]["revenue"]) == (15, 30000.0)
    assert everyone[challenger.pk]["vs_champion"]["champion_messages"] == 30
    assert everyone[challenger.pk]["vs_champion"]["close_rate"] == round(6 / 15 - 10 / 30, 4)


def test_leaderboard_has_deltas_and_can_be_limited_to_one_organization():
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    champion, challenger = _deployed_pair()
    _planted(ours, challenger, replies=2, quiet=8)
    _planted(ours, champion, replies=1, quiet=9)
    _planted(theirs, champion, deals=4, quiet=6)

    board = {row["id"]: row for row in leaderboard(kind=POLICY, organization_id=ours.pk)}

    assert board[champion.pk]["revenue"] == 0.0 and board[champion.pk]["messages"] == 10
    assert board[champion.pk]["vs_champion"] is None
    assert board[challenger.pk]["vs_champion"]["reply_rate"] == 0.1
    assert board[challenger.pk]["rank"] == 1  # on our labels the challenger leads
    everyone = {row["id"]: row for row in leaderboard(kind=POLICY)}
    assert everyone[champion.pk]["revenue"] == 20000.0 and everyone[champion.pk]["rank"] == 1


def test_refresh_stores_the_performance_of_deployed_versions_only():
    organization = OrganizationFactory()
    champion, challenger = _deployed_pair()
    retired = _policy(status=RETIRED)
    _planted(organization, challenger, meetings=1, quiet=1)
    _planted(organization, champion, quiet=4)
    _planted(organization, retired, deals=1)

    refreshed = performance_refresh_deployed()

    assert set(refreshed) == {champion.pk, challenger.pk}
    challenger.refresh_from_db()
    champion.refresh_from_db()
    retired.refresh_from_db()
    assert (challenger.performance["messages"], challenger.performance["vs_champion"]["meeting_rate"]) == (2, 0.5)
    assert champion.performance["messages"] == 4 and champion.performance["vs_champion"] is None
    assert "rolled_up_at" in champion.performance
    assert retired.performance == {}


def test_the_daily_promotion_check_rolls_performance_up_after_promoting(monkeypatch):
    from training import tasks

    organization = OrganizationFactory()
    champion, challenger = _deployed_pair()
    _planted(organization, challenger, replies=1, quiet=1)
    _planted(organization, champion, quiet=2)

    def promote(**kwargs):  # the challenger wins today
        model_deploy(version=challenger, role=CHAMPION, traffic_percentage=100)
        return []

    monkeypatch.setattr(tasks, "promote_ab_test_winner", promote)

    tasks.promotion_check()

    challenger.refresh_from_db()
    champion.refresh_from_db()
    # Rolled up after the promotion: the new champion is the baseline, the old one (retired) is left alone.
    assert challenger.performance["messages"] == 2 and challenger.performance["vs_champion"] is None
    assert champion.performance == {}
