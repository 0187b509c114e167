"""Deliverability endpoints: /domain/health, /domain/rotate, /domain/assign and /api/alerts."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from agents.domains import mailbox_assign, mailbox_pause_and_move, sending_domain_pause_and_move, warmup_stage
from agents.domains.selectors import domain_health_list, open_alert_list, phone_number_list
from agents.models import Campaign, Lead, Mailbox, SendingDomain
from rex_project.api import OrganizationAPIView, id_field


class DomainHealthMailboxOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    address = serializers.CharField()
    daily_cap = serializers.IntegerField()
    target_daily_cap = serializers.IntegerField()
    sent_today = serializers.IntegerField()
    warmup = serializers.SerializerMethodField()
    is_paused = serializers.BooleanField()
    pause_reason = serializers.CharField()
    last_sent_at = serializers.DateTimeField()

    def get_warmup(self, obj: Mailbox) -> dict:
        return warmup_stage(obj)


class DomainHealthPhoneOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    daily_cap = serializers.IntegerField()
    sent_today = serializers.IntegerField()
    is_paused = serializers.BooleanField()
    pause_reason = serializers.CharField()


class DomainHealthDomainOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    domain = serializers.CharField()
    reputation_score = serializers.FloatField()
    reputation_inputs = serializers.JSONField()
    dns_checks = serializers.JSONField()
    dkim_selector = serializers.CharField()
    daily_cap = serializers.IntegerField()
    sent_today = serializers.IntegerField()
    is_paused = serializers.BooleanField()
    pause_reason = serializers.CharField()
    paused_at = serializers.DateTimeField()
    last_checked_at = serializers.DateTimeField()
    mailboxes = DomainHealthMailboxOutputSerializer(many=True)


class DomainHealthApi(OrganizationAPIView):
    class DomainHealthOutputSerializer(serializers.Serializer):
        domains = DomainHealthDomainOutputSerializer(many=True)
        phone_numbers = DomainHealthPhoneOutputSerializer(many=True)

    @extend_schema(responses={200: DomainHealthOutputSerializer})
    def get(self, request):
        data = {
            "domains": domain_health_list(organization=self.organization),
            "phone_numbers": phone_number_list(organization=self.organization),
        }
        return Response(self.DomainHealthOutputSerializer(data).data)


class DomainRotateApi(OrganizationAPIView):
    """Pause one mailbox (or a whole domain) and move its queued messages to healthy mailboxes."""

    class DomainRotateInputSerializer(serializers.Serializer):
        mailbox_id = id_field(required=False)
        domain_id = id_field(required=False)
        reason = serializers.CharField(max_length=150, required=False, allow_blank=True)

        def validate(self, data):
            if ("mailbox_id" in data) == ("domain_id" in data):
                raise serializers.ValidationError({"mailbox_id": ["Give exactly one of mailbox_id or domain_id."]})
            return data

    class DomainRotateOutputSerializer(serializers.Serializer):
        paused = serializers.CharField()
        pause_reason = serializers.CharField()
        moved = serializers.IntegerField()

    @extend_schema(request=DomainRotateInputSerializer, responses={200: DomainRotateOutputSerializer})
    def post(self, request):
        serializer = self.DomainRotateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        reason = f"rotated by {request.user.get_username()}" + (f": {data['reason']}" if data.get("reason") else "")
        if "mailbox_id" in data:
            target = self.get_scoped_mailbox(pk=data["mailbox_id"])
            moved = mailbox_pause_and_move(target, reason=reason)
        else:
            target = self.get_scoped(SendingDomain.objects.all(), pk=data["domain_id"])
            moved = sending_domain_pause_and_move(target, reason=reason)
        result = {"paused": str(target), "pause_reason": target.pause_reason, "moved": moved}
        return Response(self.DomainRotateOutputSerializer(result).data)

    def get_scoped_mailbox(self, **lookup) -> Mailbox:
        queryset = Mailbox.objects.filter(sending_domain__organization=self.organization).select_related(
            "sending_domain__organization"
        )
        return get_object_or_404(queryset, **lookup)


class DomainAssignApi(OrganizationAPIView):
    """Allocate a mailbox for a lead (its previous sender while healthy) or for a campaign."""

    class DomainAssignInputSerializer(serializers.Serializer):
        lead_id = id_field(required=False)
        campaign_id = id_field(required=False)

        def validate(self, data):
            if not data:
                raise serializers.ValidationError({"lead_id": ["Give lead_id, campaign_id or both."]})
            return data

    class DomainAssignOutputSerializer(serializers.Serializer):
        mailbox_id = serializers.IntegerField(source="id")
        address = serializers.CharField()
        domain = serializers.CharField(source="sending_domain.domain")
        daily_cap = serializers.IntegerField()
        sent_today = serializers.IntegerField()
        reputation_score = serializers.FloatField(source="sending_domain.reputation_score")

    @extend_schema(request=DomainAssignInputSerializer, responses={200: DomainAssignOutputSerializer})
    def post(self, request):
        serializer = self.DomainAssignInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lead = self.get_scoped(Lead.objects.all(), pk=data["lead_id"]) if "lead_id" in data else None
        campaign = self.get_scoped(Campaign.objects.all(), pk=data["campaign_id"]) if "campaign_id" in data else None
        mailbox = mailbox_assign(organization=self.organization, lead=lead, campaign=campaign)
        return Response(self.DomainAssignOutputSerializer(mailbox).data, status=status.HTTP_200_OK)


class AlertListApi(OrganizationAPIView):
    class AlertOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.CharField()
        subject = serializers.CharField()
        sending_domain_id = serializers.IntegerField(allow_null=True)
        mailbox_id = serializers.IntegerField(allow_null=True)
        message = serializers.CharField()
        figures = serializers.JSONField()
        raised_at = serializers.DateTimeField()

    @extend_schema(responses={200: AlertOutputSerializer(many=True)})
    def get(self, request):
        alerts = open_alert_list(organization=self.organization)
        return Response(self.AlertOutputSerializer(alerts, many=True).data)
