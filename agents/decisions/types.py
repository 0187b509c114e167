"""The decision engine's answer, shared by all three layers."""

from dataclasses import dataclass, field

from agents.models import AgentRun


@dataclass(frozen=True)
class Decision:
    stage: str  # a DecisionRule.Stage value
    action: str  # a DecisionRule.Action value, or an LLM choice such as "PAS/professional"
    layer: str  # an AgentRun.Layer value: which layer decided
    reason: str = ""
    params: dict = field(default_factory=dict)
    latency_ms: float = 0.0
    rule_id: int | None = None
    llm_cache_hit: bool | None = None
    llm_tokens: int = 0
    llm_fallback: bool = False

    @property
    def by_state_machine(self) -> bool:
        return self.layer == AgentRun.Layer.STATE_MACHINE
