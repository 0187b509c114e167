"""DecisionRule admin: operators edit the business rules; every save or delete reaches the workers within seconds."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from agents.models import DecisionRule

from .rules import rules_changed, validate_condition


class DecisionRuleForm(forms.ModelForm):
    class Meta:
        model = DecisionRule
        fields = ("organization", "name", "stage", "priority", "enabled", "condition", "action", "parameters")
        widgets = {"condition": forms.Textarea(attrs={"rows": 3, "cols": 80})}

    def clean_condition(self) -> str:
        condition = self.cleaned_data["condition"]
        try:
            validate_condition(condition)
        except ValidationError as error:
            # A field's clean method must raise a plain error; the dict form is for model-level validation.
            raise ValidationError(error.message_dict["condition"]) from error
        return condition

    def clean_parameters(self) -> dict:
        parameters = self.cleaned_data["parameters"]
        if parameters in (None, ""):
            return {}
        if not isinstance(parameters, dict):
            raise ValidationError('Parameters must be a JSON object, e.g. {"days": 14}.')
        return parameters


@admin.register(DecisionRule)
class DecisionRuleAdmin(admin.ModelAdmin):
    form = DecisionRuleForm
    list_display = ("name", "organization", "stage", "action", "priority", "enabled", "updated_at")
    list_editable = ("priority", "enabled")
    list_filter = ("stage", "action", "enabled", "organization")
    list_select_related = ("organization",)
    search_fields = ("name", "condition")
    autocomplete_fields = ("organization",)
    readonly_fields = ("created_at", "updated_at")
    ordering = ("organization", "stage", "priority", "id")
    fieldsets = (
        (None, {"fields": ("organization", "name", "stage", "priority", "enabled")}),
        ("Rule", {"fields": ("condition", "action", "parameters")}),
        ("Audit", {"classes": ("collapse",), "fields": ("created_at", "updated_at")}),
    )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        rules_changed(obj.organization_id)
        previous = form.initial.get("organization")
        if change and "organization" in form.changed_data and previous:
            rules_changed(previous)  # the rule also left its old organization

    def delete_model(self, request, obj):
        organization_id = obj.organization_id
        super().delete_model(request, obj)
        rules_changed(organization_id)

    def delete_queryset(self, request, queryset):
        organization_ids = set(queryset.values_list("organization_id", flat=True))
        super().delete_queryset(request, queryset)
        for organization_id in organization_ids:
            rules_changed(organization_id)
