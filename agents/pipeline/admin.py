"""ICPProfile admin: operators tune the ideal customer by hand, or rebuild it from what actually won."""

from django import forms
from django.contrib import admin, messages

from agents.models import ICPProfile

from .icp import DEFAULT_WEIGHTS, MIN_OUTCOMES, icp_profile_refresh
from .seniority import SENIORITIES

LIST_FIELDS = ("target_industries", "target_seniorities", "target_regions")


class ICPProfileForm(forms.ModelForm):
    class Meta:
        model = ICPProfile
        fields = (
            "organization",
            "source",
            "qualify_threshold",
            *LIST_FIELDS,
            "company_size_min",
            "company_size_max",
            "weights",
        )

    def clean(self):
        cleaned = super().clean()
        # A cleared JSON box arrives as None, which the NOT NULL column refuses: it means "no targets".
        for name in LIST_FIELDS:
            value = cleaned.get(name) or []
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                self.add_error(name, 'Use a JSON list of strings, e.g. ["SaaS", "Fintech"].')
            cleaned[name] = value
        unknown = set(cleaned.get("target_seniorities") or []) - set(SENIORITIES)
        if unknown:
            self.add_error("target_seniorities", f"Unknown seniorities {sorted(unknown)}; use {list(SENIORITIES)}.")
        weights = cleaned.get("weights") or {}
        if not isinstance(weights, dict) or set(weights) - set(DEFAULT_WEIGHTS):
            self.add_error("weights", f"Use a JSON object with some of the keys {list(DEFAULT_WEIGHTS)}.")
        cleaned["weights"] = weights
        low, high = cleaned.get("company_size_min"), cleaned.get("company_size_max")
        if low is not None and high is not None and low > high:
            self.add_error("company_size_max", "Must be at least the minimum.")
        return cleaned


@admin.register(ICPProfile)
class ICPProfileAdmin(admin.ModelAdmin):
    form = ICPProfileForm
    list_display = ("organization", "source", "sample_size", "qualify_threshold", "updated_at")
    list_filter = ("source",)
    list_select_related = ("organization",)
    search_fields = ("organization__name",)
    autocomplete_fields = ("organization",)
    # sample_size only means something for a derived profile, so only the refresh writes it.
    readonly_fields = ("sample_size", "updated_at")
    fieldsets = (
        (None, {"fields": ("organization", "source", "sample_size", "qualify_threshold", "updated_at")}),
        (
            "Targets",
            {
                "fields": (
                    "target_industries",
                    "target_seniorities",
                    "company_size_min",
                    "company_size_max",
                    "target_regions",
                ),
                "description": "Empty lists are neutral: that part of the score neither helps nor hurts.",
            },
        ),
        ("Weights", {"fields": ("weights",), "description": "Normalised when scoring, so they need not sum to 1."}),
    )
    actions = ("refresh_from_outcomes",)

    @admin.action(description="Refresh from outcomes")
    def refresh_from_outcomes(self, request, queryset):
        for profile in queryset.select_related("organization"):
            refreshed = icp_profile_refresh(organization=profile.organization)
            if refreshed is None:
                not_enough = f"fewer than {MIN_OUTCOMES} won deals, meetings or positive outcomes; unchanged"
                self.message_user(request, f"{profile.organization}: {not_enough}.", messages.WARNING)
            else:
                self.message_user(
                    request, f"{profile.organization}: profile derived from {refreshed.sample_size} outcomes."
                )
