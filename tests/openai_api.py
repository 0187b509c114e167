"""What the OpenAI API answers, for tests that run the real SDK against a local HTTP server."""

import json
import time


def chat_completion(content: dict | str, *, model: str = "gpt-4o-mini-2024-07-18", total_tokens: int = 57) -> dict:
    """A chat.completion object as POST /v1/chat/completions returns it."""
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content if isinstance(content, str) else json.dumps(content),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": total_tokens - 12,
            "completion_tokens": 12,
            "total_tokens": total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_44709d6fcb",
    }
