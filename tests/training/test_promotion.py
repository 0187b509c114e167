"""A/B promotion: a truly better challenger is promoted, a worse or equal one never is."""

import random
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from scipy import stats

from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory, ModelVersionFactory
from training.models import ModelVersion, PromotionDecision
from training.promotion import arm_figures, promote_ab_test_winner, welch_p_value

pytestmark = pytest.mark.django_db

BASE = {"reply": 0.10, "meeting": 0.03, "deal": 0.01}


def _plant(
    lead, version, n: int, rates: dict, rng: random.Random, *, sent_at, unsub: float = 0.0, triggered=None
) -> np.ndarray:
    """n sent messages of one arm with outcomes drawn at the given rates; returns their per-message scores.
    ``triggered`` (True/False) records the personalizer's counterfactual A/B flag on each message."""
    decisions = {}
    if triggered is not None:
        decisions = {"PersonalizerAgent": {"policy": {"version": version.pk, "triggered": triggered}}}
    rows, scores = [], []
    for _ in range(n):
        deal = rng.random() < rates["deal"]
        meeting = deal or rng.random() < rates["meeting"]
        reply = meeting or rng.random() < rates["reply"]
        rows.append(
            OutcomeLabel(
                organization=lead.organization,
                lead=lead,
                model_version=version,
                sent_at=sent_at,
                replied=reply,
                meeting_booked=meeting,
                deal_closed=deal,
                unsubscribed=rng.random() < unsub,
                agent_decisions=decisions,
            )
        )
        scores.append(0.5 * deal + 0.3 * meeting + 0.2 * reply)
    OutcomeLabel.objects.bulk_create(rows, batch_size=1000)
    return np.array(scores)


def _policy(version: str, **fields) -> ModelVersion:
    return ModelVersionFactory(
        kind=ModelVersion.Kind.POLICY,
        backend=ModelVersion.Backend.LOCAL,
        version=version,
        artifact_path="policy.joblib",
        **fields,
    )


def _ab_test(rng, challenger_rates: dict, *, n: int = 3000, unsub: float = 0.0):
    deployed = timezone.now() - timedelta(days=8)
    champion = _policy("v1.0.0", status="deployed", ab_role="champion", traffic_percentage=50, deployed_at=deployed)
    challenger = _policy("v1.1.0", status="deployed", ab_role="challenger", traffic_percentage=50, deployed_at=deployed)
    lead = LeadFactory()
    sent = deployed + timedelta(days=1)
    _plant(lead, champion, n, BASE, rng, sent_at=sent)
    _plant(lead, challenger, n, challenger_rates, rng, sent_at=sent, unsub=unsub)
    return champion, challenger


def test_arm_figures_score_mean_and_variance_match_the_per_message_scores():
    rng = random.Random(1)
    version = _policy("v1.0.0")
    scores = _plant(LeadFactory(), version, 500, {"reply": 0.3, "meeting": 0.1, "deal": 0.05}, rng,
                    sent_at=timezone.now())  # fmt: skip

    figures = arm_figures(OutcomeLabel.objects.filter(model_version=version))

    assert figures.messages == 500
    assert figures.score == pytest.approx(scores.mean())
    assert figures.score_variance == pytest.approx(scores.var(ddof=1))


def test_welch_p_value_agrees_with_scipy():
    rng = random.Random(2)
    a, b = _policy("v1.0.0"), _policy("v1.1.0")
    now = timezone.now()
    scores_a = _plant(LeadFactory(), a, 800, {"reply": 0.2, "meeting": 0.06, "deal": 0.02}, rng, sent_at=now)
    scores_b = _plant(LeadFactory(), b, 700, BASE, rng, sent_at=now)

    p_value = welch_p_value(
        arm_figures(OutcomeLabel.objects.filter(model_version=a)),
        arm_figures(OutcomeLabel.objects.filter(model_version=b)),
    )

    expected = stats.ttest_ind(scores_a, scores_b, equal_var=False, alternative="greater").pvalue
    assert p_value == pytest.approx(expected, rel=1e-6)


def test_a_truly_better_challenger_is_promoted_and_the_champion_retired():
    champion, challenger = _ab_test(random.Random(3), {"reply": 0.16, "meeting": 0.06, "deal": 0.025})

    [decision] = promote_ab_test_winner(kind="policy")

    assert decision.outcome == PromotionDecision.Outcome.PROMOTED, decision.reason
    challenger.refresh_from_db()
    champion.refresh_from_db()
    assert (challenger.ab_role, challenger.traffic_percentage) == ("champion", 100.0)
    assert champion.status == ModelVersion.Status.RETIRED
    assert decision.figures["p_value"] < 0.05
    assert decision.figures["challenger"]["messages"] == 3000


@pytest.mark.parametrize("seed", range(8))
def test_an_equal_or_worse_challenger_is_never_promoted(seed):
    worse = {"reply": 0.08, "meeting": 0.025, "deal": 0.008} if seed % 2 else BASE
    champion, challenger = _ab_test(random.Random(100 + seed), worse)

    [decision] = promote_ab_test_winner(kind="policy")

    assert decision.outcome == PromotionDecision.Outcome.RETIRED
    challenger.refresh_from_db()
    champion.refresh_from_db()
    assert challenger.status == ModelVersion.Status.RETIRED
    assert (champion.ab_role, champion.status) == ("champion", "deployed")


def test_a_winner_that_makes_people_unsubscribe_is_kept_out():
    _ab_test(random.Random(4), {"reply": 0.16, "meeting": 0.06, "deal": 0.025}, unsub=0.03)

    [decision] = promote_ab_test_winner(kind="policy")

    assert decision.outcome == PromotionDecision.Outcome.RETIRED
    assert "unsubscribe" in decision.reason


def test_before_the_minimum_exposure_the_challenger_waits():
    _, challenger = _ab_test(random.Random(5), {"reply": 0.16, "meeting": 0.06, "deal": 0.025}, n=100)

    [decision] = promote_ab_test_winner(kind="policy")

    assert decision.outcome == PromotionDecision.Outcome.WAITING
    challenger.refresh_from_db()
    assert (challenger.status, challenger.ab_role) == ("deployed", "challenger")


def test_without_a_champion_the_challenger_is_measured_against_the_baseline():
    rng = random.Random(6)
    deployed = timezone.now() - timedelta(days=8)
    challenger = _policy("v1.0.0", status="deployed", ab_role="challenger", traffic_percentage=10, deployed_at=deployed)
    lead = LeadFactory()
    _plant(lead, None, 3000, BASE, rng, sent_at=deployed + timedelta(days=1))
    _plant(
        lead, challenger, 3000, {"reply": 0.2, "meeting": 0.07, "deal": 0.03}, rng, sent_at=deployed + timedelta(days=1)
    )

    [decision] = promote_ab_test_winner(kind="policy")

    assert decision.champion is None
    assert decision.figures["champion"]["messages"] == 3000
    assert decision.outcome == PromotionDecision.Outcome.PROMOTED


def _triggered_ab_test(rng, challenger_rates: dict, *, untriggered: int = 3000, triggered: int = 1500):
    """Both arms send the same to most leads (untriggered, equal rates); only the triggered leads differ."""
    deployed = timezone.now() - timedelta(days=8)
    champion = _policy("v1.0.0", status="deployed", ab_role="champion", traffic_percentage=50, deployed_at=deployed)
    challenger = _policy("v1.1.0", status="deployed", ab_role="challenger", traffic_percentage=50, deployed_at=deployed)
    lead, sent = LeadFactory(), deployed + timedelta(days=1)
    scores = {}
    for version, rates in ((champion, BASE), (challenger, challenger_rates)):
        alike = _plant(lead, version, untriggered, BASE, rng, sent_at=sent, triggered=False)
        different = _plant(lead, version, triggered, rates, rng, sent_at=sent, triggered=True)
        scores[version.pk] = (alike, different)
    return champion, challenger, scores


def test_with_recorded_triggers_the_arms_are_compared_on_the_triggered_messages():
    champion, challenger, scores = _triggered_ab_test(random.Random(7), {"reply": 0.18, "meeting": 0.06, "deal": 0.025})

    [decision] = promote_ab_test_winner(kind="policy")

    assert decision.outcome == PromotionDecision.Outcome.PROMOTED, decision.reason
    triggered = decision.figures["triggered"]
    assert triggered["challenger"]["messages"] == triggered["champion"]["messages"] == 1500
    assert decision.figures["challenger"]["messages"] == 4500  # all messages still reported (and guard-railed)
    assert triggered["share"] == pytest.approx(1 / 3)
    ours, theirs = scores[challenger.pk][1], scores[champion.pk][1]
    assert decision.figures["p_value"] == pytest.approx(
        stats.ttest_ind(ours, theirs, equal_var=False, alternative="greater").pvalue, rel=1e-6
    )
    champion_all = np.concatenate(scores[champion.pk]).mean()
    assert decision.figures["lift"] == pytest.approx((ours.mean() - theirs.mean()) / 3 / champion_all)
    assert "33% of messages" in decision.reason


@pytest.mark.parametrize("seed", range(4))
def test_a_worse_challenger_on_the_triggered_messages_is_never_promoted(seed):
    _triggered_ab_test(random.Random(200 + seed), {"reply": 0.08, "meeting": 0.025, "deal": 0.008})

    [decision] = promote_ab_test_winner(kind="policy")

    assert decision.outcome == PromotionDecision.Outcome.RETIRED
    assert "triggered" in decision.figures


def test_a_challenger_that_would_send_what_the_champion_sends_is_retired():
    _, challenger, _ = _triggered_ab_test(
        random.Random(8), {"reply": 0.3, "meeting": 0.1, "deal": 0.05}, untriggered=3000, triggered=1
    )

    [decision] = promote_ab_test_winner(kind="policy", min_messages_per_arm=60)

    assert decision.outcome == PromotionDecision.Outcome.RETIRED
    assert "same strategy to all but 2 of 6002 leads" in decision.reason
    challenger.refresh_from_db()
    assert challenger.status == ModelVersion.Status.RETIRED
