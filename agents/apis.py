"""Lead and account endpoints. One view per operation, each with its own serializers."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from agents.models import Lead
from agents.selectors import lead_list
from agents.services import lead_create
from rex_project.api import OrganizationAPIView


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

    class OutputSerializer(serializers.Serializer):
        user = serializers.CharField()
        organization_id = serializers.IntegerField()
        organization = serializers.CharField()
        role = serializers.CharField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        membership = request.user.membership
        data = {
            "user": request.user.get_username(),
            "organization_id": membership.organization_id,
            "organization": membership.organization.name,
            "role": membership.role,
        }
        return Response(self.OutputSerializer(data).data)


class LeadListCreateApi(OrganizationAPIView):
    class FilterSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=Lead.State.choices, required=False)
        industry = serializers.CharField(required=False)
        company = serializers.CharField(required=False)
        search = serializers.CharField(required=False)

    class InputSerializer(serializers.Serializer):
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

    @extend_schema(parameters=[FilterSerializer], responses=LeadOutputSerializer(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = lead_list(organization=self.organization, filters=filters.validated_data)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(LeadOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: LeadOutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lead = lead_create(organization=self.organization, **serializer.validated_data)
        return Response(LeadOutputSerializer(lead).data, status=status.HTTP_201_CREATED)
