from django.urls import path

from agents import apis

urlpatterns = [
    path("me/", apis.MeApi.as_view(), name="me"),
    path("leads/", apis.LeadListCreateApi.as_view(), name="lead-list"),
]
