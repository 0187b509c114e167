"""What was sent, and the LinkedIn operator queue: /api/messages and /api/linkedin-tasks."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from agents.linkedin import linkedin_task_complete
from agents.models import LinkedInTask, Message
from rex_project.api import OrganizationAPIView, id_field
from rex_project.schema import PAGE, page_of


class MessageOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id", "mission", "lead", "step", "channel", "status", "to_address", "from_address", "subject", "body",
            "framework", "tone", "variant", "provider", "provider_message_id", "rfc_message_id", "custom_args",
            "headers", "provider_request", "error", "scheduled_for", "sent_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class LinkedInTaskOutputSerializer(serializers.ModelSerializer):
    lead = serializers.IntegerField(source="message.lead_id", read_only=True)
    message_status = serializers.CharField(source="message.status", read_only=True)

    class Meta:
        model = LinkedInTask
        fields = [
            "id", "message", "lead", "message_status", "profile_url", "text", "status", "handled_by", "handled_at",
            "created_at",
        ]  # fmt: skip
        read_only_fields = fields


def _paginated(view: OrganizationAPIView, queryset, serializer_class) -> Response:
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class MessageListApi(OrganizationAPIView):
    class MessageFilterSerializer(serializers.Serializer):
        mission = id_field(required=False)
        lead = id_field(required=False)
        status = serializers.ChoiceField(choices=Message.Status.choices, required=False)
        channel = serializers.ChoiceField(choices=Message.Channel.choices, required=False)

    @extend_schema(
        operation_id="api_messages_list",
        parameters=[MessageFilterSerializer, PAGE],
        responses=page_of(MessageOutputSerializer),
    )
    def get(self, request):
        filters = self.MessageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        lookups = {f"{name}_id" if name in ("mission", "lead") else name: value
                   for name, value in filters.validated_data.items()}  # fmt: skip
        queryset = self.scoped(Message.objects.filter(**lookups)).order_by("-created_at", "-id")
        return _paginated(self, queryset, MessageOutputSerializer)


class MessageDetailApi(OrganizationAPIView):
    @extend_schema(responses=MessageOutputSerializer)
    def get(self, request, message_id: int):
        return Response(MessageOutputSerializer(self.get_scoped(Message.objects.all(), pk=message_id)).data)


class LinkedInTaskListApi(OrganizationAPIView):
    class LinkedInTaskFilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=LinkedInTask.Status.choices, required=False, default=LinkedInTask.Status.PENDING
        )

    @extend_schema(
        operation_id="api_linkedin_tasks_list",
        parameters=[LinkedInTaskFilterSerializer, PAGE],
        responses=page_of(LinkedInTaskOutputSerializer),
    )
    def get(self, request):
        filters = self.LinkedInTaskFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = self.scoped(LinkedInTask.objects.select_related("message")).filter(
            status=filters.validated_data["status"]
        )
        return _paginated(self, queryset.order_by("created_at", "id"), LinkedInTaskOutputSerializer)


class LinkedInTaskCompleteApi(OrganizationAPIView):
    class LinkedInTaskCompleteInputSerializer(serializers.Serializer):
        sent = serializers.BooleanField()

    @extend_schema(request=LinkedInTaskCompleteInputSerializer, responses=LinkedInTaskOutputSerializer)
    def post(self, request, task_id: int):
        serializer = self.LinkedInTaskCompleteInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = self.get_scoped(LinkedInTask.objects.all(), pk=task_id)
        task = linkedin_task_complete(task=task, user=request.user, sent=serializer.validated_data["sent"])
        return Response(LinkedInTaskOutputSerializer(task).data)
