"""Loom's engine protocol over HTTP (standard library only): claim a round, then, naming the claim's
attempt (the fencing token), heartbeat, send events and metrics, download the snapshot, send the
results or a failure. A 409 means another attempt holds the round now (or it ended): stop."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Optional


class LoomError(Exception):
    """Loom refused a call; `status` is the HTTP status and the message Loom's own."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class FencedOut(LoomError):
    """409: another attempt took the round over, or it ended or was cancelled. Send nothing more."""


@dataclass
class Attempt:
    """What a claim answered: the round, the attempt number and the routes for this attempt."""

    claim: dict

    @property
    def round_id(self) -> str:
        return self.claim["roundId"]

    @property
    def attempt(self) -> int:
        return int(self.claim["attempt"])

    @property
    def paths(self) -> dict:
        return self.claim["paths"]


class LoomClient:
    """One Loom server and one API token scoped to training."""

    def __init__(self, url: str, token: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Optional[dict] = None) -> tuple[int, bytes, dict]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"authorization": f"Bearer {self.token}", "accept": "application/json"}
        if data is not None:
            headers["content-type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                message = json.loads(raw).get("message", raw.decode("utf-8", "replace"))
            except ValueError:
                message = raw.decode("utf-8", "replace")
            kind = FencedOut if error.code == 409 else LoomError
            raise kind(error.code, message) from None

    def _json(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        status, raw, _ = self._request(method, path, body)
        return None if status == 204 or not raw else json.loads(raw)

    def claim(self, worker: Optional[str] = None, lease_seconds: int = 120, engine: str = "trl") -> Optional[Attempt]:
        """The oldest round waiting for this engine, or None when there is none."""
        body: dict = {"engine": engine, "leaseSeconds": lease_seconds}
        if worker:
            body["worker"] = worker
        claim = self._json("POST", "/api/engine/claim", body)
        return Attempt(claim) if claim else None

    def heartbeat(self, attempt: Attempt, lease_seconds: int = 120) -> bool:
        """Extends the lease; True when the round was cancelled (stop, send nothing more)."""
        answer = self._json("POST", attempt.paths["heartbeat"], {"leaseSeconds": lease_seconds})
        return bool(answer["cancel"])

    def events(self, attempt: Attempt, events: list[dict], phase: Optional[str] = None,
               progress: Optional[float] = None) -> int:
        body: dict = {"events": events}
        if phase is not None:
            body["phase"] = phase
        if progress is not None:
            body["progress"] = max(0.0, min(1.0, progress))
        return int(self._json("POST", attempt.paths["events"], body)["accepted"])

    def metrics(self, attempt: Attempt, metrics: dict) -> dict:
        return self._json("POST", attempt.paths["metrics"], {"metrics": metrics})["metrics"]

    def download_snapshot(self, attempt: Attempt, path: str) -> str:
        """Writes the round's snapshot to `path`, checked against the sha256 the claim named."""
        _, raw, _ = self._request("GET", attempt.claim["snapshot"]["path"])
        digest = hashlib.sha256(raw).hexdigest()
        expected = attempt.claim["snapshot"]["sha256"]
        if digest != expected:
            raise LoomError(0, f"snapshot sha256 {digest} differs from the claim's {expected}")
        with open(path, "wb") as file:
            file.write(raw)
        return digest

    def results(self, attempt: Attempt, results: dict) -> dict:
        return self._json("POST", attempt.paths["results"], results)

    def fail(self, attempt: Attempt, error: str) -> dict:
        return self._json("POST", attempt.paths["fail"], {"error": error[:2000] or "failed"})


class Heartbeat(threading.Thread):
    """Heartbeats every `every` seconds until stopped; sets `cancelled` when Loom says so and
    `fenced` when another attempt took the round over, then stops."""

    def __init__(self, client: LoomClient, attempt: Attempt, lease_seconds: int = 120,
                 every: Optional[float] = None, on_stop: Optional[Callable[[str], None]] = None):
        super().__init__(daemon=True, name="loom-heartbeat")
        self.client = client
        self.attempt = attempt
        self.lease_seconds = lease_seconds
        self.every = every if every is not None else max(1.0, lease_seconds / 4)
        self.on_stop = on_stop
        self.cancelled = threading.Event()
        self.fenced = threading.Event()
        self.errors = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                if self.client.heartbeat(self.attempt, self.lease_seconds):
                    self.cancelled.set()
                    if self.on_stop:
                        self.on_stop("cancelled")
                    return
                self.errors = 0
            except FencedOut:
                self.fenced.set()
                if self.on_stop:
                    self.on_stop("fenced")
                return
            except (LoomError, OSError):
                # A blip: the lease outlives a few missed beats.
                self.errors += 1

    def stop(self) -> None:
        self._stop_event.set()
