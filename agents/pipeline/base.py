"""What every pipeline agent is: one job on one lead at a time, returning a StepResult.

The task runner (agents/pipeline/runner.py) times each call, records an AgentRun (with the
decision's layer, latency and outcome), marks failures on the lead's MissionLead row, and
passes the leads that proceed to the next agent of the chain.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from agents.decisions.types import Decision
from agents.models import AgentRun, Lead, Mission, MissionLead


@dataclass
class StepResult:
    proceed: bool = True  # False: the lead leaves the chain here
    output: dict = field(default_factory=dict)  # short summary kept on the AgentRun
    decision: Decision | None = None  # set when the agent asked the decision engine
    final_status: str = MissionLead.Status.DONE  # the MissionLead status when proceed is False


class Agent:
    name: ClassVar[str]  # an AgentRun.Agent value
    # The runner wraps each lead in a transaction, so a failed lead leaves nothing half-written.
    # An agent that talks to the outside world mid-step commits its own steps instead.
    atomic_per_lead: ClassVar[bool] = True

    def __init__(self, *, mission: Mission):
        self.mission = mission
        self.organization = mission.organization

    def input_summary(self, lead: Lead) -> dict:
        return {"lead_id": lead.pk, "state": lead.state}

    def process(self, lead: Lead) -> StepResult:
        raise NotImplementedError


AGENT_NAMES = AgentRun.Agent
