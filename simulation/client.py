"""REX's public API as the simulation's operator uses it (token auth, JSON), over HTTP."""

import time

import requests

FINISHED = ("completed", "failed", "cancelled")


class RexApiError(RuntimeError):
    pass


class RexClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})

    def _call(self, method: str, path: str, **kwargs) -> dict:
        for attempt in range(5):
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
            if response.status_code == 429:  # REX's per-user throttle: wait as told
                time.sleep(float(response.headers.get("Retry-After") or 2**attempt))
                continue
            if response.status_code >= 400:
                raise RexApiError(f"{method} {path} → HTTP {response.status_code}: {response.text[:500]}")
            return response.json()
        raise RexApiError(f"{method} {path} stayed throttled")

    def leads_import(self, rows: list[dict]) -> dict:
        return self._call("POST", "/api/leads/import", json={"leads": rows})

    def mission_launch(self, *, lead_ids: list[int], key: str, priority: int = 70) -> dict:
        body = {"type": "lead_reactivation", "priority": priority, "lead_ids": lead_ids}
        return self._call("POST", "/rex/command", json=body, headers={"Idempotency-Key": key})

    def mission(self, mission_id: int) -> dict:
        return self._call("GET", f"/rex/command/{mission_id}")

    def stats(self) -> dict:
        return self._call("GET", "/rex/stats")
