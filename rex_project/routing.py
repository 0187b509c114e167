"""URL patterns that answer with or without a trailing slash (clients type both; a 301 would drop a POST)."""

import re

from django.urls import re_path

_PARAM = re.compile(r"<int:(\w+)>")


def route(pattern: str, view, name: str):
    regex = _PARAM.sub(r"(?P<\1>[0-9]+)", pattern.strip("/"))
    return re_path(rf"^{regex}/?$", view, name=name)
