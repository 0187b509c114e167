"""Lead and account endpoints. One view per operation, each with its own serializers."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from agents.models import Campaign, Lead
from agents.selectors import lead_list
from agents.services import campaign_save, lead_create, lead_update, leads_import, leads_parse_csv
from rex_project.api import OrganizationAPIView, id_field
from rex_project.schema import PAGE, page_of

MAX_IMPORT_ROWS = 50_000


class LeadOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Lead
        fields = [
            "id", "first_name", "last_name", "email", "phone", "title", "company", "industry", "company_size",
            "timezone", "website", "linkedin_url", "lost_reason", "last_engaged_at", "state", "icp_score",
            "reactivation_probability", "enrichment", "last_contacted_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class MeApi(OrganizationAPIView):
    """Who the token belongs to. Also the cheapest authenticated call (one indexed read)."""

    class MeOutputSerializer(serializers.Serializer):
        user = serializers.CharField()
        organization_id = serializers.IntegerField()
        organization = serializers.CharField()
        role = serializers.CharField()

    @extend_schema(responses=MeOutputSerializer)
    def get(self, request):
        membership = request.user.membership
        data = {
            "user": request.user.get_username(),
            "organization_id": membership.organization_id,
            "organization": membership.organization.name,
            "role": membership.role,
        }
        return Response(self.MeOutputSerializer(data).data)


class LeadInputSerializer(serializers.Serializer):
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True)
    industry = serializers.CharField(max_length=100, required=False, allow_blank=True)
    company_size = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    website = serializers.URLField(required=False, allow_blank=True)
    linkedin_url = serializers.URLField(required=False, allow_blank=True)
    lost_reason = serializers.CharField(max_length=200, required=False, allow_blank=True)
    last_engaged_at = serializers.DateTimeField(required=False, allow_null=True)


class LeadListCreateApi(OrganizationAPIView):
    class LeadFilterSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=Lead.State.choices, required=False)
        industry = serializers.CharField(required=False)
        company = serializers.CharField(required=False)
        search = serializers.CharField(required=False)

    @extend_schema(
        operation_id="api_leads_list", parameters=[LeadFilterSerializer, PAGE], responses=page_of(LeadOutputSerializer)
    )
    def get(self, request):
        filters = self.LeadFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = lead_list(organization=self.organization, filters=filters.validated_data)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(LeadOutputSerializer(page, many=True).data)

    @extend_schema(request=LeadInputSerializer, responses={201: LeadOutputSerializer})
    def post(self, request):
        serializer = LeadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lead = lead_create(organization=self.organization, **serializer.validated_data)
        return Response(LeadOutputSerializer(lead).data, status=status.HTTP_201_CREATED)


class LeadDetailApi(OrganizationAPIView):
    @extend_schema(responses=LeadOutputSerializer)
    def get(self, request, lead_id: int):
        return Response(LeadOutputSerializer(self.get_scoped(Lead.objects.all(), pk=lead_id)).data)

    @extend_schema(request=LeadInputSerializer, responses=LeadOutputSerializer)
    def patch(self, request, lead_id: int):
        lead = self.get_scoped(Lead.objects.all(), pk=lead_id)
        serializer = LeadInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(LeadOutputSerializer(lead_update(lead=lead, **serializer.validated_data)).data)


class LeadImportApi(OrganizationAPIView):
    """Bulk import: a CSV file (multipart field ``file``) or JSON (a list, or {"leads": [...]})."""

    @extend_schema(request=dict, responses=dict)
    def post(self, request):
        rows = self._rows(request)
        if len(rows) > MAX_IMPORT_ROWS:
            raise ValidationError({"file": f"At most {MAX_IMPORT_ROWS} rows per import; split the file."})
        result = leads_import(organization=self.organization, rows=rows)
        return Response(
            {"received": len(rows), "created": len(result.created), "rejected": result.rejected},
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    def _rows(self, request) -> list[dict]:
        upload = request.FILES.get("file")
        if upload is not None:
            try:
                return leads_parse_csv(text=upload.read().decode("utf-8-sig"))
            except UnicodeDecodeError as exc:
                raise ValidationError({"file": "The file must be UTF-8 encoded CSV."}) from exc
        data = request.data.get("leads") if isinstance(request.data, dict) else request.data
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise ValidationError({"leads": "Send a CSV file as 'file', or JSON: a list of lead objects."})
        return data


class CampaignSerializer(serializers.ModelSerializer):
    lead_ids = serializers.ListField(child=id_field(), write_only=True, required=False)
    lead_count = serializers.IntegerField(source="leads.count", read_only=True)
    channels = serializers.ListField(
        child=serializers.ChoiceField(choices=["email", "sms", "linkedin"]), required=False
    )

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "goal", "status", "channels", "send_window_start", "send_window_end",
            "stop_company_on_reply", "lead_ids", "lead_count", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]
        validators = []  # name uniqueness is the service's job (per organization)


class CampaignListCreateApi(OrganizationAPIView):
    @extend_schema(operation_id="api_campaigns_list", parameters=[PAGE], responses=page_of(CampaignSerializer))
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(self.scoped(Campaign.objects.order_by("-created_at")), request, view=self)
        return paginator.get_paginated_response(CampaignSerializer(page, many=True).data)

    @extend_schema(request=CampaignSerializer, responses={201: CampaignSerializer})
    def post(self, request):
        serializer = CampaignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        campaign = campaign_save(organization=self.organization, created_by=request.user, **serializer.validated_data)
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(OrganizationAPIView):
    @extend_schema(responses=CampaignSerializer)
    def get(self, request, campaign_id: int):
        return Response(CampaignSerializer(self.get_scoped(Campaign.objects.all(), pk=campaign_id)).data)

    @extend_schema(request=CampaignSerializer, responses=CampaignSerializer)
    def patch(self, request, campaign_id: int):
        campaign = self.get_scoped(Campaign.objects.all(), pk=campaign_id)
        serializer = CampaignSerializer(campaign, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        campaign = campaign_save(organization=self.organization, campaign=campaign, **serializer.validated_data)
        return Response(CampaignSerializer(campaign).data)
