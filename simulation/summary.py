"""The end-of-run report: a plain dict of every figure (also saved as JSON) and its text rendering."""

from agents.models import AgentRun, Message
from agents.selectors import decision_stats
from outcomes.models import OutcomeLabel
from simulation import report
from training.models import ModelVersion, PromotionDecision

OF_ORACLE_TARGET = 0.9
OVER_RANDOM_TARGET = 1.5


def _arms(week, names: dict[int, str]) -> str:
    def label(arm: str) -> str:
        return names.get(int(arm.split(":")[1]), arm) if arm.startswith("policy:") else arm

    return ", ".join(f"{label(arm)} {count}" for arm, count in sorted(week.arms.items()))


def _week_row(week, names: dict[int, str]) -> dict:
    outcomes = report.outcome_counts(OutcomeLabel.objects.filter(message_id__in=week.sent_ids))
    return {
        "week": week.week,
        "mission": week.mission_id,
        "leads": week.cohort,
        "sends": outcomes["sends"],
        **{f"{name}_rate": outcomes[f"{name}_rate"] for name in report.RATES},
        "policy": week.graded.policy,
        "random": week.graded.random,
        "oracle": week.graded.oracle,
        "arms": _arms(week, names),
        "held_by_rules": week.holds["held_by_rules"],
        "deferred_by_limits": week.holds["deferred_by_limits"],
        "promotion": [f"{d.challenger.version}: {d.outcome}" for d in week.promotion],
        "trained": week.training.model_version.version if week.training and week.training.model_version else None,
        "seconds": round(week.seconds, 1),
    }


def _deployed(versions: list[dict]) -> dict | None:
    """The policy serving traffic at the end: the champion, else the newest deployed challenger."""
    serving = [row for row in versions if row["status"] == ModelVersion.Status.DEPLOYED and row["true_reply_rate"]]
    champion = [row for row in serving if row["role"] == ModelVersion.Role.CHAMPION]
    return (champion or serving[-1:] or [None])[0]


def _efficacy(deployed: dict | None, seed: int, how: str) -> dict:
    if deployed is None:
        return {"seed": seed, "how": how, "version": None, "met": False}
    policy = deployed["true_reply_rate"]
    of_oracle, over_random = deployed["of_oracle"], deployed["over_random"]
    return {
        "seed": seed,
        "how": how,
        "version": deployed["version"],
        "role": deployed["role"],
        "policy": policy,
        "random": policy / over_random if over_random else None,
        "oracle": policy / of_oracle if of_oracle else None,
        "of_oracle": of_oracle,
        "over_random": over_random,
        "met": of_oracle >= OF_ORACLE_TARGET and over_random >= OVER_RANDOM_TARGET,
    }


def run_summary(result) -> dict:
    world, organization = result.world, result.installed.organization
    versions = report.versions_table(world, organization, since=result.started_at)
    names = {row["id"]: row["version"] for row in versions}
    sent = Message.objects.filter(organization=organization, status=Message.Status.SENT)
    baseline = report.choices_graded(world, [m for m in sent if report.arm_of(m) == "baseline"])
    decisions = PromotionDecision.objects.filter(challenger_id__in=list(names)).select_related("challenger", "champion")
    graded = {row["id"]: row["true_reply_rate"] for row in versions}
    deployed = _deployed(versions)
    stats = decision_stats(organization=organization)
    return {
        "title": (
            f"REX flywheel simulation: world seed {world.seed}, {len(result.weeks)} weeks, {len(world.leads)} leads"
        ),
        "seed": world.seed,
        "how": result.how,
        "seconds": round(result.seconds, 1),
        "timezones": list(result.timezones),
        "hidden_preferences": world.model.describe(),
        "weeks": [_week_row(week, names) for week in result.weeks],
        "totals": report.outcome_counts(OutcomeLabel.objects.filter(organization=organization)),
        "decision_layers": report.decision_layers(AgentRun.objects.filter(mission__organization=organization)),
        "llm": stats["llm"],
        "versions": versions,
        "baseline_true_reply_rate": baseline.policy if baseline.leads else None,
        "promotions": report.promotion_audit(decisions.order_by("id"), graded, baseline.policy or None),
        "compliance": report.compliance(organization),
        "deployed": deployed,
        "efficacy": _efficacy(deployed, world.seed, result.how),
        "webhooks": {key: value for key, value in result.responder.stats.items() if key.startswith("post.")},
        "webhook_errors": result.responder.errors[:10],
    }


# --- Text ------------------------------------------------------------------------------------------------------


def _pct(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _weeks_text(summary: dict) -> list[str]:
    lines = [
        "Week  leads  sends  deliv.  replied  meetings  deals │ REX's choices  random  oracle │ A/B arms",
    ]
    for row in summary["weeks"]:
        lines.append(
            f"{row['week']:>4}  {row['leads']:>5}  {row['sends']:>5}  {_pct(row['delivered_rate']):>6}  "
            f"{_pct(row['replied_rate']):>7}  {_pct(row['meeting_rate']):>8}  {_pct(row['deal_rate']):>5} │ "
            f"{_pct(row['policy']):>13}  {_pct(row['random']):>6}  {_pct(row['oracle']):>6} │ {row['arms']}"
        )
    return lines


def _truth(challenger: float | None, against: float | None) -> str:
    """The world's verdict on an A/B pair, at the precision the report prints (0.1 pt): equal is not better."""
    if challenger is None or against is None:
        return "not graded"
    if round(challenger, 3) == round(against, 3):
        return "truly equal"
    return "TRULY WORSE" if challenger < against else "truly better"


def _versions_text(summary: dict) -> list[str]:
    lines = ["Policy versions (true expected reply = the world's grade of the version's choices over all leads):"]
    for row in summary["versions"]:
        lines.append(
            f"  {row['version']:<8} {row['status']:<8} {row['role']:<10} traffic {row['traffic']:>5.1f}%  "
            f"trained on {row['examples'] or 0:>5}  AUC {row['auc'] if row['auc'] is not None else '—'}  "
            f"sends {row['sends']:>4}  replies {_pct(row['reply_rate'])}  true {_pct(row['true_reply_rate'])} "
            f"({_pct(row['of_oracle'])} of oracle)"
        )
    for row in summary["promotions"]:
        verdict = _truth(row["challenger_true"], row["against_true"])
        lines.append(
            f"  A/B {row['challenger']} vs {row['against']}: {row['outcome']} — {row['reason']} "
            f"[world: {_pct(row['challenger_true'])} vs {_pct(row['against_true'])}, {verdict}]"
        )
    wrong = sum(row["wrong_promotion"] for row in summary["promotions"])
    lines.append(f"  promotions of a truly worse challenger: {wrong}")
    return lines


def _compliance_text(summary: dict) -> list[str]:
    c = summary["compliance"]
    opt_outs = ", ".join(f"{reason} {n}" for reason, n in sorted(c["opt_outs"].items())) or "none"
    rules = ", ".join(f"{reason} ×{n}" for reason, n in c["deferred_by_rules"].items()) or "none"
    return [
        f"Suppressions: {c['opt_outs_total']} ({opt_outs}); honoured: "
        f"{c['opt_outs_total'] - c['opt_outs_violated']}/{c['opt_outs_total']} (no send after the opt-out)",
        f"Sends stopped at the gate by a suppression: {c['stopped_by_suppression']}; messages cancelled: "
        f"{c['cancelled_messages']}",
        f"Sends deferred by send windows and rules: {rules}; by rate limits and caps: {c['deferred_by_limits']}; "
        f"still held at the end: {c['held_at_end']}",
    ]


def render_text(summary: dict) -> str:
    layers = summary["decision_layers"]
    total = sum(layers.values()) or 1
    split = ", ".join(f"{name} {n} ({n / total:.0%})" for name, n in layers.items())
    totals = summary["totals"]
    efficacy = summary["efficacy"]
    lines = [
        "",
        summary["title"],
        f"Hidden preferences (never shown to REX): {summary['hidden_preferences']}",
        *_weeks_text(summary),
        f"All sends: {totals['sends']}, delivered {_pct(totals['delivered_rate'])}, replied "
        f"{_pct(totals['replied_rate'])}, meetings {totals['meeting']}, deals {totals['deal']}, "
        f"unsubscribed {totals['unsubscribed']}, spam reports {totals['spam']}",
        f"Decision layers: {split}; LLM fallbacks {summary['llm'].get('fallbacks', 0)}",
        *_versions_text(summary),
        *_compliance_text(summary),
        f"World webhooks: {summary['webhooks']}; rejected by REX: {len(summary['webhook_errors'])}",
    ]
    if efficacy["version"]:
        lines.append(
            f"REX vs random vs oracle (deployed policy {efficacy['version']}, {efficacy['role']}, over all leads): "
            f"{_pct(efficacy['policy'])} vs {_pct(efficacy['random'])} vs {_pct(efficacy['oracle'])} → "
            f"{efficacy['of_oracle']:.0%} of oracle, {efficacy['over_random']:.2f}× random "
            f"(targets ≥ {OF_ORACLE_TARGET:.0%} and ≥ {OVER_RANDOM_TARGET}×: {'met' if efficacy['met'] else 'NOT met'})"
        )
    else:
        lines.append("REX vs random vs oracle: no policy version was deployed at the end of the run.")
    return "\n".join(lines)
