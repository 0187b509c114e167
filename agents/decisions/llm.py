"""The LLM reasoner: the decision engine's third layer, asked only when a business rule escalates.

Every prompt is redacted first (outcomes.redaction), so no email, phone, URL or known name reaches the model
or the cache; answers are cached by the hash of the redacted prompt and model. Without a key, or when the call
fails, the reasoner still answers, flagged as a fallback: the question's own default when it names one (the
choice an operator expects without a model), else a deterministic choice from the same hash.
"""

import functools
import hashlib
import json
import logging
from dataclasses import dataclass, field

import openai
from django.conf import settings
from django.core.cache import cache

from outcomes.redaction import Redactor, restore

logger = logging.getLogger("rex.llm")

ANSWER_TTL = 7 * 24 * 3600  # a week: the same redacted question keeps getting the same answer
HITS_KEY, MISSES_KEY = "rex:llm:cache:hits", "rex:llm:cache:misses"

SYSTEM_PROMPT = (
    "You are REX's decision assistant for reactivating dead B2B leads. Pick exactly one of the options. "
    'Reply with a JSON object {"choice": "<one option, copied exactly>", "reason": "<one short sentence>"}. '
    "Values like [NAME_1] or [EMAIL_1] stand for redacted personal data; keep them as they are."
)


@functools.lru_cache(maxsize=4)
def _client_for(api_key: str, base_url: str | None, timeout: float, max_retries: int) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)


def openai_client() -> openai.OpenAI | None:
    """The process's OpenAI client, or None when no key is configured; rebuilt only when the settings change."""
    if not settings.OPENAI_API_KEY:
        return None
    return _client_for(
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT, settings.OPENAI_MAX_RETRIES
    )


@dataclass
class LLMQuestion:
    question: str
    options: list[str]
    context: dict = field(default_factory=dict)
    known_pii: dict = field(default_factory=dict)  # e.g. {"first_name": "Maya", "company": "Brightlane"}
    default: str | None = None  # the option to take when no model answers; None: chosen by the prompt's hash


@dataclass
class LLMAnswer:
    choice: str
    reason: str
    cache_hit: bool
    tokens: int  # spent by this call: 0 for a cache hit or when no model was called
    fallback: bool


def _count(key: str) -> None:
    cache.add(key, 0, timeout=None)
    try:
        cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=None)


def llm_cache_stats() -> dict:
    hits, misses = cache.get(HITS_KEY, 0), cache.get(MISSES_KEY, 0)
    total = hits + misses
    return {"hits": hits, "misses": misses, "hit_rate": round(hits / total, 4) if total else 0.0}


@dataclass(frozen=True)
class _Prompt:
    messages: list[dict]
    options: list[str]  # redacted, in the question's order
    mapping: dict[str, str]
    digest: str  # sha256 of the redacted prompt and the model


def _build_prompt(question: LLMQuestion, model: str) -> _Prompt:
    redactor = Redactor(known=question.known_pii)
    options = [redactor.text(option) for option in question.options]
    context = json.dumps(question.context, sort_keys=True, ensure_ascii=False, default=str)
    user = "\n".join(
        [
            f"Question: {redactor.text(question.question)}",
            "Options:",
            *(f"- {option}" for option in options),
            f"Context (JSON): {redactor.text(context)}",
        ]
    )
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
    digest = hashlib.sha256(json.dumps([model, messages], ensure_ascii=False).encode()).hexdigest()
    return _Prompt(messages=messages, options=options, mapping=redactor.mapping, digest=digest)


class LLMReasoner:
    def __init__(self, *, client: openai.OpenAI | None = None, model: str | None = None):
        # Read the settings at call time by default, so a key set later (or in a test) is honoured.
        self._client, self._model = client, model

    def choose(self, question: LLMQuestion) -> LLMAnswer:
        if not question.options:
            raise ValueError("An LLM question needs at least one option.")
        model = self._model or settings.OPENAI_MODEL
        prompt = _build_prompt(question, model)
        key = f"rex:llm:answer:{prompt.digest}"
        cached = cache.get(key)
        if cached is not None:
            _count(HITS_KEY)
            return self._answer(question, prompt, cached["index"], cached["reason"], cache_hit=True)
        _count(MISSES_KEY)
        client = self._client or openai_client()
        if client is None:
            return self._fallback(question, prompt, "no model configured")
        try:
            response = client.chat.completions.create(
                model=model,
                messages=prompt.messages,
                response_format={"type": "json_object"},
                temperature=0,
            )
        except openai.APIError as error:  # timeouts and connection errors are APIError subclasses
            return self._fallback(question, prompt, f"LLM call failed: {type(error).__name__}: {str(error)[:200]}")
        tokens = response.usage.total_tokens if response.usage else 0
        content = response.choices[0].message.content if response.choices else None
        index, reason, problem = self._parse(prompt, content)
        if problem:
            return self._fallback(question, prompt, problem, tokens=tokens)
        cache.set(key, {"index": index, "reason": reason}, timeout=ANSWER_TTL)
        return self._answer(question, prompt, index, reason, cache_hit=False, tokens=tokens)

    @staticmethod
    def _parse(prompt: _Prompt, content: str | None) -> tuple[int, str, str]:
        """(option index, redacted reason, problem); a non-empty problem means the answer is unusable."""
        try:
            answer = json.loads(content or "")
        except json.JSONDecodeError:
            return -1, "", "LLM answer was not JSON"
        choice = answer.get("choice") if isinstance(answer, dict) else None
        if choice not in prompt.options:
            return -1, "", f"LLM chose {str(choice)[:80]!r}, which is not one of the options"
        return prompt.options.index(choice), str(answer.get("reason", "")), ""

    @staticmethod
    def _answer(question, prompt, index, reason, *, cache_hit, tokens=0) -> LLMAnswer:
        return LLMAnswer(
            choice=question.options[index],
            reason=restore(reason, prompt.mapping),
            cache_hit=cache_hit,
            tokens=tokens,
            fallback=False,
        )

    @staticmethod
    def _fallback(question, prompt, why: str, *, tokens: int = 0) -> LLMAnswer:
        if question.default in question.options:
            choice, how = question.default, "the question's default"
        else:
            # Stable across processes and runs (unlike hash()): the same question always falls back the same way.
            choice = question.options[int(prompt.digest, 16) % len(question.options)]
            how = "deterministic fallback choice"
        logger.warning("LLM fallback (%s): chose %r", why, choice)
        reason = f"{why}; {how}"
        return LLMAnswer(choice=choice, reason=reason, cache_hit=False, tokens=tokens, fallback=True)
