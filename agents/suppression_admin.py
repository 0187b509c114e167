"""Suppression admin: manual entries, CSV import and export, all through the suppression service.

Registered here rather than in agents/admin.py so the import page lives beside its form; this module
replaces the plain registration that agents/admin.py makes.
"""

import csv
import io
from dataclasses import dataclass, field

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from agents.compliance import suppress, suppression_normalize, unsuppress
from agents.models import Organization, Suppression

EXPORT_COLUMNS = ("value", "kind", "reason", "organization", "note", "created_at")
MAX_IMPORT_BYTES = 5 * 1024 * 1024
SHOWN_INVALID_ROWS = 10


def infer_kind(value: str) -> str:
    """email if it has an "@", phone if it starts with "+" or a digit, otherwise a whole domain."""
    value = value.strip()
    if "@" in value:
        return Suppression.Kind.EMAIL
    if value[:1] == "+" or value[:1].isdigit():
        return Suppression.Kind.PHONE
    return Suppression.Kind.DOMAIN


@dataclass
class ImportReport:
    created: int = 0
    skipped: int = 0
    invalid: list[str] = field(default_factory=list)


def suppressions_import(*, organization: Organization, rows, reason: str) -> ImportReport:
    """Suppress each ``value[,kind]`` row; a header row ("value", ...) and blank rows are ignored."""
    report = ImportReport()
    for line, row in enumerate(rows, start=1):
        value = row[0].strip() if row else ""
        if not value or (line == 1 and value.lower() == "value"):
            continue
        kind = row[1].strip().lower() if len(row) > 1 and row[1].strip() else infer_kind(value)
        try:
            if kind not in Suppression.Kind.values:
                raise ValidationError(f"unknown kind '{kind}'")
            normalized = suppression_normalize(kind=kind, value=value)
        except ValidationError as exc:
            report.invalid.append(f"line {line}: {value!r} ({'; '.join(exc.messages)})")
            continue
        if Suppression.objects.filter(organization=organization, kind=kind, value=normalized).exists():
            report.skipped += 1
            continue
        suppress(organization=organization, kind=kind, value=normalized, reason=reason, note="CSV import")
        report.created += 1
    return report


class SuppressionImportForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.all())
    file = forms.FileField(help_text="One entry per line: value[,kind] (email, phone or domain; guessed if empty).")
    reason = forms.ChoiceField(choices=Suppression.Reason.choices, initial=Suppression.Reason.MANUAL)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise ValidationError(f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError("The file is not UTF-8 text.") from exc


class SuppressionForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ("organization", "kind", "value", "reason", "note")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") and cleaned.get("value"):
            try:
                cleaned["value"] = suppression_normalize(kind=cleaned["kind"], value=cleaned["value"])
            except ValidationError as exc:
                self.add_error("value", exc.messages)
        return cleaned


admin.site.unregister(Suppression)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    form = SuppressionForm
    change_list_template = "admin/agents/suppression/change_list.html"
    list_display = ("value", "kind", "reason", "organization", "note", "created_at")
    list_filter = ("kind", "reason", "organization")
    list_select_related = ("organization",)
    search_fields = ("value", "note", "organization__name")
    date_hierarchy = "created_at"
    show_full_result_count = False
    autocomplete_fields = ("organization",)
    readonly_fields = ("created_at",)
    actions = ("export_csv",)

    def get_readonly_fields(self, request, obj=None):
        # What an entry blocks is fixed once saved: delete it and add another to change that.
        if obj is not None:
            return ("organization", "kind", "value", "created_at")
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # Through the service, so the contact's queued messages are cancelled and its leads suppressed.
        saved = suppress(
            organization=obj.organization, kind=obj.kind, value=obj.value, reason=obj.reason, note=obj.note
        )
        obj.pk = saved.pk
        obj.created_at = saved.created_at

    def delete_model(self, request, obj):
        unsuppress(organization=obj.organization, kind=obj.kind, value=obj.value)

    def delete_queryset(self, request, queryset):
        for entry in queryset.select_related("organization"):
            unsuppress(organization=entry.organization, kind=entry.kind, value=entry.value)

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="suppressions-{stamp}.csv"'
        writer = csv.writer(response)
        writer.writerow(EXPORT_COLUMNS)
        for entry in queryset.select_related("organization").order_by("organization__name", "kind", "value"):
            created = entry.created_at.isoformat()
            writer.writerow([entry.value, entry.kind, entry.reason, entry.organization.name, entry.note, created])
        return response

    def get_urls(self):
        import_view = self.admin_site.admin_view(self.import_csv_view)
        return [path("import/", import_view, name="agents_suppression_import"), *super().get_urls()]

    def import_csv_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SuppressionImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            report = suppressions_import(
                organization=form.cleaned_data["organization"],
                rows=csv.reader(io.StringIO(form.cleaned_data["file"])),
                reason=form.cleaned_data["reason"],
            )
            self._report(request, report)
            return HttpResponseRedirect(reverse("admin:agents_suppression_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import suppressions from CSV",
            "form": form,
        }
        return TemplateResponse(request, "admin/agents/suppression/import_csv.html", context)

    def _report(self, request, report: ImportReport) -> None:
        messages.success(
            request,
            f"CSV import: {report.created} created, {report.skipped} skipped (already suppressed), "
            f"{len(report.invalid)} invalid.",
        )
        if report.invalid:
            shown = "; ".join(report.invalid[:SHOWN_INVALID_ROWS])
            more = len(report.invalid) - SHOWN_INVALID_ROWS
            messages.warning(request, f"Invalid rows: {shown}" + (f"; and {more} more" if more > 0 else ""))
