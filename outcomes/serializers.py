"""Output shapes of the outcome and analytics APIs (they also document the OpenAPI schema).

The analytics figures are plain dicts from outcomes.selectors; these serializers only render and describe them.
"""

from rest_framework import serializers

from outcomes.models import OutcomeLabel


class OutcomeLabelOutputSerializer(serializers.ModelSerializer):
    """Every field of the row, in the seed's groups (message, agent decisions, delivery, engagement, reply and
    sentiment, meeting, revenue, lead context, training)."""

    class Meta:
        model = OutcomeLabel
        fields = [
            "id", "campaign", "mission", "lead", "message", "model_version",
            # Message
            "channel", "subject_line", "message_body", "sent_at",
            # Agent decisions
            "framework", "tone", "agent_decisions",
            # Delivery
            "delivered", "delivered_at", "bounced", "bounce_type", "bounce_reason",
            # Engagement (bot opens and clicks kept apart)
            "opened", "clicked", "open_count", "click_count", "bot_open_count", "bot_click_count", "first_opened_at",
            "first_clicked_at", "unsubscribed", "spam_reported",
            # Reply and sentiment
            "replied", "replied_at", "reply_text", "reply_sentiment_score", "sentiment_label", "interest_signal",
            "interest_level", "objection_detected", "objection_type", "sentiment_reasoning",
            # Meeting
            "meeting_booked", "meeting_booked_at", "meeting_completed", "meeting_no_show",
            # Revenue
            "opportunity_created", "deal_closed", "deal_lost", "deal_value", "deal_closed_at", "time_to_close_days",
            # Lead context
            "lead_industry", "lead_role", "company_size", "icp_score", "lead_context",
            # Training
            "training_label", "training_weight", "included_in_training", "included_in_training_at",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


def _interval(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, **kwargs)


class RateIntervalsSerializer(serializers.Serializer):
    """95% Wilson score interval [low, high] of each rate over sends."""

    delivery_rate = _interval()
    open_rate = _interval()
    reply_rate = _interval()
    meeting_rate = _interval()
    close_rate = _interval()


class FunnelSerializer(serializers.Serializer):
    sent = serializers.IntegerField(help_text="Messages sent (one outcome row each); every rate is over this.")
    delivered = serializers.IntegerField()
    opened = serializers.IntegerField()
    replied = serializers.IntegerField()
    meetings = serializers.IntegerField()
    deals = serializers.IntegerField()
    revenue = serializers.FloatField(help_text="Sum of closed deals' value.")
    delivery_rate = serializers.FloatField()
    open_rate = serializers.FloatField()
    reply_rate = serializers.FloatField()
    meeting_rate = serializers.FloatField()
    close_rate = serializers.FloatField()
    avg_deal_value = serializers.FloatField(help_text="Revenue per closed deal; 0 without deals.")
    reply_rate_ci95 = _interval(help_text="Same as ci95.reply_rate.")
    ci95 = RateIntervalsSerializer()


class StrategySerializer(FunnelSerializer):
    framework = serializers.CharField()
    tone = serializers.CharField()
    channel = serializers.CharField()


class CampaignStrategySerializer(StrategySerializer):
    exploring = serializers.BooleanField(
        help_text="Under min_sample sends: too uncertain to rank, listed after the ranked arms (explore)."
    )


class WinningStrategiesOutputSerializer(serializers.Serializer):
    metric = serializers.CharField()
    min_sample = serializers.IntegerField()
    channel = serializers.CharField(allow_null=True)
    since = serializers.DateTimeField(allow_null=True)
    ranked = StrategySerializer(many=True, help_text="Arms with at least min_sample sends, best first (exploit).")
    exploring = StrategySerializer(
        many=True, help_text="Arms under min_sample sends, most sends first: too uncertain to rank (explore)."
    )


class LayerCountSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    percent = serializers.FloatField()


class LayerSplitSerializer(serializers.Serializer):
    state_machine = LayerCountSerializer()
    rules = LayerCountSerializer()
    llm = LayerCountSerializer()


class AgentRowSerializer(serializers.Serializer):
    agent = serializers.CharField()
    label = serializers.CharField()
    runs = serializers.IntegerField()
    successes = serializers.IntegerField()
    failures = serializers.IntegerField()
    success_rate = serializers.FloatField()
    success_rate_ci95 = _interval()
    decisions = serializers.IntegerField(help_text="Runs that made a decision (any layer but 'none').")
    layers = LayerSplitSerializer()
    avg_duration_ms = serializers.FloatField(allow_null=True)
    avg_decision_ms = serializers.FloatField(allow_null=True)


class CampaignPerformanceSerializer(serializers.Serializer):
    campaign_id = serializers.IntegerField(allow_null=True, help_text="None: missions without a campaign.")
    campaign_name = serializers.CharField(allow_blank=True)
    outcomes = FunnelSerializer(help_text="Outcome rates of the messages this campaign sent.")
    strategies = CampaignStrategySerializer(
        many=True,
        help_text="The same rates per framework x tone x channel: arms with at least min_sample sends first, best "
        "first by metric, then the arms still exploring (most sends first).",
    )
    agents = AgentRowSerializer(many=True)


class LatencySerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    sample = serializers.IntegerField()


class LLMUsageSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    cache_hits = serializers.IntegerField()
    fallbacks = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cache_hit_rate = serializers.FloatField(allow_null=True)


class DecisionStatsSerializer(serializers.Serializer):
    decisions = serializers.IntegerField()
    layers = LayerSplitSerializer()
    latency_ms = LatencySerializer()
    llm = LLMUsageSerializer()


class AgentPerformanceOutputSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(allow_null=True)
    since = serializers.DateTimeField(allow_null=True)
    agent = serializers.CharField(allow_null=True, help_text="The agent whose runs are shown; null: every agent.")
    metric = serializers.CharField(help_text="What ranks each campaign's strategies.")
    min_sample = serializers.IntegerField(help_text="Sends a strategy needs to be ranked rather than explored.")
    campaigns = CampaignPerformanceSerializer(many=True)
    organization_decisions = DecisionStatsSerializer(
        help_text="Organization-wide and all-time (the /rex/stats figures): layer split and latency percentiles."
    )
