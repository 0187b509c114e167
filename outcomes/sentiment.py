"""Reply sentiment: what a reply says about interest and objections.

INTERFACE (kept stable for callers): ``SentimentAnalyzer().analyze(...) -> ReplyAnalysis`` and
``ReplyAnalysis.outcome_fields()``. The rule set below is a placeholder being replaced by the full
analyzer (LLM structured output + rule fallback).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReplyAnalysis:
    sentiment_score: float  # -1..1
    sentiment_label: str  # positive | neutral | negative
    interest_signal: bool
    interest_level: str  # high | medium | low | none
    objection_detected: bool
    objection_type: str  # none | price | timing | authority | competitor | not_interested | no_need
    reasoning: str
    # What kind of reply: interested | objection | neutral | unsubscribe | out_of_office
    category: str = "neutral"
    source: str = "rules"  # rules | llm
    extra: dict = field(default_factory=dict)

    def outcome_fields(self) -> dict:
        """The OutcomeLabel sentiment fields (``outcomes.tracker.SENTIMENT_FIELDS``)."""
        return {
            "sentiment_label": self.sentiment_label,
            "reply_sentiment_score": self.sentiment_score,
            "interest_signal": self.interest_signal,
            "interest_level": self.interest_level,
            "objection_detected": self.objection_detected,
            "objection_type": self.objection_type,
            "sentiment_reasoning": self.reasoning,
        }


class SentimentAnalyzer:
    def analyze(
        self, *, reply_text: str, original_message: str = "", lead_context: dict | None = None
    ) -> ReplyAnalysis:
        text = reply_text.lower()
        if any(word in text for word in ("interested", "let's talk", "sounds good", "book", "call")):
            return ReplyAnalysis(0.7, "positive", True, "high", False, "none", "placeholder rules", "interested")
        return ReplyAnalysis(0.0, "neutral", False, "low", False, "none", "placeholder rules", "neutral")
