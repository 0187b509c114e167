"""Small helpers shared by the admin modules: JSON rendered readable on change pages."""

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString

PRE_STYLE = "white-space: pre-wrap; word-break: break-word; max-height: 40em; overflow: auto; margin: 0;"


def pre_block(text: str) -> SafeString:
    """``text`` in a ``<pre>`` block, HTML-escaped."""
    return format_html('<pre style="{}">{}</pre>', PRE_STYLE, text)


def pretty_json(value: Any) -> SafeString:
    """A JSON value pretty-printed (indent 2, sorted keys) in an escaped ``<pre>`` block."""
    return pre_block(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def json_display(field_name: str, description: str | None = None) -> Callable[[Any, Any], SafeString]:
    """A read-only ModelAdmin display method showing ``field_name`` as pretty JSON.

    Usage, in a ModelAdmin body: ``enrichment_pretty = json_display("enrichment")``, then list
    ``"enrichment_pretty"`` in ``readonly_fields`` and in ``fields``/``fieldsets`` instead of the raw field.
    """

    @admin.display(description=description or field_name.replace("_", " "))
    def display(self, obj) -> SafeString:
        return pretty_json(getattr(obj, field_name))

    display.__name__ = f"{field_name}_pretty"
    return display
