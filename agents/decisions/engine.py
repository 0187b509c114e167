"""decide(): the three decision layers in order, cheapest first.

1. State machine: a suppressed lead stops; an event the lifecycle forbids is skipped.
2. Business rules: the first matching rule of the stage decides, unless it escalates.
3. LLM: only for a rule that escalated, with the caller's question.
Nothing matched: proceed. Layers 1 and 2 run from memory (the rules are cached in-process), so a decision
costs no database query and no network call unless a rule escalates to the LLM.
"""

import dataclasses
import time

from agents.models import AgentRun, DecisionRule, Lead

from .lifecycle import lead_can
from .llm import LLMQuestion, LLMReasoner
from .rules import CompiledRule, first_match
from .types import Decision

Layer, Action = AgentRun.Layer, DecisionRule.Action


def decide(
    *,
    lead: Lead,
    stage: str,
    facts: dict,
    event: str | None = None,
    llm_question: LLMQuestion | None = None,
    reasoner: LLMReasoner | None = None,
) -> Decision:
    started = time.perf_counter()
    decision = _decide(lead, stage, facts, event, llm_question, reasoner)
    return dataclasses.replace(decision, latency_ms=(time.perf_counter() - started) * 1000)


def _decide(lead, stage, facts, event, llm_question, reasoner) -> Decision:
    # An opt-out outranks everything but the event that lifts it.
    if lead.state == Lead.State.SUPPRESSED and event != "resubscribe":
        return Decision(stage=stage, action=Action.STOP, layer=Layer.STATE_MACHINE, reason="lead is 'suppressed'")
    if event is not None and not lead_can(lead, event):
        reason = f"lead is '{lead.state}': '{event}' not allowed"
        return Decision(stage=stage, action=Action.SKIP, layer=Layer.STATE_MACHINE, reason=reason)
    rule = first_match(lead.organization_id, stage, facts)
    if rule is None:
        allowed = f"'{event}' from '{lead.state}'" if event else f"stage '{stage}' from '{lead.state}'"
        return Decision(
            stage=stage, action=Action.PROCEED, layer=Layer.STATE_MACHINE, reason=f"lifecycle allows {allowed}"
        )
    if rule.action != Action.ESCALATE_LLM:
        return Decision(
            stage=stage,
            action=rule.action,
            layer=Layer.RULES,
            reason=rule.name,
            params=dict(rule.parameters),
            rule_id=rule.id,
        )
    return _ask_llm(stage, rule, llm_question, reasoner)


def _ask_llm(stage: str, rule: CompiledRule, question: LLMQuestion | None, reasoner: LLMReasoner | None) -> Decision:
    if question is None:
        return Decision(
            stage=stage,
            action=Action.PROCEED,
            layer=Layer.LLM,
            reason=f"{rule.name}: escalated, but the caller gave no question for the LLM",
            rule_id=rule.id,
            llm_fallback=True,
        )
    answer = (reasoner or LLMReasoner()).choose(question)
    return Decision(
        stage=stage,
        action=answer.choice,
        layer=Layer.LLM,
        reason=answer.reason,
        params=dict(rule.parameters),
        rule_id=rule.id,
        llm_cache_hit=answer.cache_hit,
        llm_tokens=answer.tokens,
        llm_fallback=answer.fallback,
    )
