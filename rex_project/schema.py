"""OpenAPI schema tweaks."""

from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers


def paths_without_trailing_slash(result, generator, request, public):
    """Routes answer with or without a trailing slash; document the contract form, without it."""
    result["paths"] = {(path.rstrip("/") or "/"): spec for path, spec in result["paths"].items()}
    return result


def page_of(serializer_class) -> serializers.Serializer:
    """The schema of a PageNumberPagination answer ({count, next, previous, results}) for views that paginate by
    hand; generic list views get it from drf-spectacular already."""
    name = serializer_class.__name__.removesuffix("Serializer")
    return inline_serializer(
        name=f"Paginated{name}List",
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )


PAGE = OpenApiParameter("page", int, description="A page number (the answer's next/previous links give them).")
