"""PII redaction before anything reaches an LLM, and restoration of the model's answer afterwards.

Emails, phone numbers, URLs and the caller's known values (names, company, ...) become placeholders such as
``[EMAIL_1]`` or ``[NAME_2]``; the same value always gets the same placeholder within one redaction, and the
mapping (placeholder -> original) lets ``restore`` put the originals back into the model's reply. Because
placeholders are numbered by order of appearance, two leads with the same shape of context redact to the same
text, which is what lets the LLM cache answer across leads.
"""

import re
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

PHONE_REGIONS = ("US", "GB", "DE", "FR")
# A one-letter value (an initial) would replace every "a" or "I" in the text.
MIN_KNOWN_LENGTH = 2

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
URL_RE = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'`]+")
URL_TRAILING = ".,;:!?)]}'\""
# Any E.164-looking number, including ones phonenumbers deems unassigned (e.g. +1 415 555 0001).
E164_RE = re.compile(r"(?<![\w+])\+[1-9]\d{7,14}(?!\d)")
# Every phone number has at least 7 digits close together; texts without such a run skip the (slow) matcher.
PHONE_HINT_RE = re.compile(r"\d(?:[\s().\-/]{0,3}\d){6}")
PLACEHOLDER_RE = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")


@dataclass(frozen=True)
class Redacted:
    text: str
    mapping: dict[str, str]  # placeholder -> original


@dataclass(frozen=True)
class RedactedMapping:
    data: Any
    mapping: dict[str, str]


def _kind_for(key: str) -> str:
    key = key.lower()
    if any(word in key for word in ("company", "organization", "organisation", "account", "employer")):
        return "COMPANY"
    for word, kind in (("email", "EMAIL"), ("phone", "PHONE"), ("url", "URL"), ("website", "URL"), ("name", "NAME")):
        if word in key:
            return kind
    return re.sub(r"[^A-Z0-9]+", "_", key.upper()).strip("_") or "PII"


def _phone_key(raw: str) -> str:
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else PHONE_REGIONS[0])
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        return "+" + re.sub(r"\D", "", raw)


@dataclass
class Redactor:
    """One redaction session: every text passed through it shares one mapping."""

    known: dict[str, str] | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values: dict[str, tuple[str, str]] = {}
        for key, value in (self.known or {}).items():
            value = str(value or "").strip()
            if len(value) >= MIN_KNOWN_LENGTH:
                values.setdefault(value.casefold(), (_kind_for(key), value))
        self._known = values
        # Longest first, so "Brightlane Labs" is replaced whole before "Brightlane" could split it.
        alternatives = sorted(values, key=len, reverse=True)
        self._known_re = (
            re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, alternatives)) + r")(?!\w)", re.IGNORECASE)
            if alternatives
            else None
        )

    def _placeholder(self, kind: str, key: str, original: str) -> str:
        placeholder = self._by_value.get((kind, key))
        if placeholder is None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            placeholder = f"[{kind}_{self._counts[kind]}]"
            self._by_value[(kind, key)] = placeholder
            self.mapping[placeholder] = original
        return placeholder

    def _replace(self, text: str, spans: list[tuple[int, int, str, str, str]]) -> str:
        """Replace non-overlapping (start, end, kind, key, original) spans, earliest and longest first."""
        pieces, position = [], 0
        for start, end, kind, key, original in sorted(spans, key=lambda span: (span[0], -span[1])):
            if start < position:
                continue
            pieces += [text[position:start], self._placeholder(kind, key, original)]
            position = end
        pieces.append(text[position:])
        return "".join(pieces)

    def _emails(self, text: str) -> str:
        spans = [(m.start(), m.end(), "EMAIL", m.group().lower(), m.group()) for m in EMAIL_RE.finditer(text)]
        return self._replace(text, spans)

    def _urls(self, text: str) -> str:
        spans = []
        for match in URL_RE.finditer(text):
            url = match.group().rstrip(URL_TRAILING)
            spans.append((match.start(), match.start() + len(url), "URL", url.lower(), url))
        return self._replace(text, spans)

    def _phones(self, text: str) -> str:
        if not PHONE_HINT_RE.search(text):
            return text
        spans = [(m.start(), m.end(), "PHONE", _phone_key(m.group()), m.group()) for m in E164_RE.finditer(text)]
        for region in PHONE_REGIONS:
            for match in phonenumbers.PhoneNumberMatcher(text, region):
                key = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
                spans.append((match.start, match.end, "PHONE", key, match.raw_string))
        return self._replace(text, spans)

    def _known_values(self, text: str) -> str:
        if self._known_re is None:
            return text
        spans = []
        for match in self._known_re.finditer(text):
            kind, original = self._known[match.group().casefold()]
            spans.append((match.start(), match.end(), kind, match.group().casefold(), original))
        return self._replace(text, spans)

    def text(self, text: str) -> str:
        # Emails first: their local part often holds the name, and their domain looks like a URL's host.
        for step in (self._emails, self._urls, self._phones, self._known_values):
            text = step(text)
        return text

    def data(self, value: Any) -> Any:
        """Redact every string inside ``value`` (dicts, lists, tuples); keys are field names and stay."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value


def redact(text: str, *, known: dict[str, str] | None = None) -> Redacted:
    redactor = Redactor(known=known)
    return Redacted(text=redactor.text(text), mapping=redactor.mapping)


def redact_mapping(data: dict, *, known: dict[str, str] | None = None) -> RedactedMapping:
    redactor = Redactor(known=known)
    return RedactedMapping(data=redactor.data(data), mapping=redactor.mapping)


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put the originals back; placeholders not in ``mapping`` (e.g. invented by the model) stay as they are."""
    return PLACEHOLDER_RE.sub(lambda match: mapping.get(match.group(), match.group()), text)
