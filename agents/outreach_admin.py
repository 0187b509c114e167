"""Admin for the outreach queues: the LinkedIn operator queue, and messages stuck in ``sending``."""

import datetime as dt

from django.contrib import admin, messages
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone
from django.utils.html import format_html

from agents import admin as agents_admin
from agents.linkedin import linkedin_task_complete
from agents.models import LinkedInTask, Message
from rex_project.exceptions import ApplicationError

STUCK_AFTER = dt.timedelta(minutes=10)

admin.site.unregister(LinkedInTask)
admin.site.unregister(Message)


@admin.register(LinkedInTask)
class LinkedInTaskQueueAdmin(agents_admin.LinkedInTaskAdmin):
    list_display = ("profile_link", "status", "text_preview", "organization", "created_at", "handled_by", "handled_at")
    actions = ("mark_sent", "mark_skipped")

    def get_ordering(self, request):
        # Pending first, oldest first: the queue an operator works through.
        pending_first = Case(When(status=LinkedInTask.Status.PENDING, then=Value(0)), default=Value(1),
                             output_field=IntegerField())  # fmt: skip
        return (pending_first.asc(), "created_at", "id")

    @admin.display(description="profile", ordering="profile_url")
    def profile_link(self, obj: LinkedInTask):
        if not obj.profile_url:
            return "— (no profile URL)"
        return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', obj.profile_url,
                           obj.profile_url)  # fmt: skip

    @admin.display(description="text")
    def text_preview(self, obj: LinkedInTask) -> str:
        return obj.text if len(obj.text) <= 80 else f"{obj.text[:79]}…"

    def _complete(self, request, queryset, *, sent: bool) -> None:
        done = 0
        for task in queryset.filter(status=LinkedInTask.Status.PENDING):
            try:
                linkedin_task_complete(task=task, user=request.user, sent=sent)
            except ApplicationError as error:  # completed meanwhile by someone else
                self.message_user(request, f"Task {task.pk}: {error.message}", messages.WARNING)
                continue
            done += 1
        self.message_user(request, f"Marked {done} LinkedIn task(s) {'sent' if sent else 'skipped'}.")

    @admin.action(description="Mark sent")
    def mark_sent(self, request, queryset):
        self._complete(request, queryset, sent=True)

    @admin.action(description="Mark skipped")
    def mark_skipped(self, request, queryset):
        self._complete(request, queryset, sent=False)


class StuckInSendingFilter(admin.SimpleListFilter):
    title = "stuck in sending"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return (("yes", f"Sending for more than {int(STUCK_AFTER.total_seconds() // 60)} minutes"),)

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(status=Message.Status.SENDING, updated_at__lt=timezone.now() - STUCK_AFTER)
        return queryset


@admin.register(Message)
class MessageAdmin(agents_admin.MessageAdmin):
    list_filter = (StuckInSendingFilter, *agents_admin.MessageAdmin.list_filter)
    list_display = (*agents_admin.MessageAdmin.list_display, "updated_at")
