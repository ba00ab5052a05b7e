"""A tiny Loom for the worker's tests: the engine protocol's routes on an in-process http.server,
with one round, its lease and attempt number, cancellation and fencing as the real server has them."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "loom_training_token"
SNAPSHOT = (
    b'{"prompt":"2+2?","chosen":" 4","rejected":" 5","margin":2}\n'
    b'{"prompt":"3+3?","chosen":" 6","rejected":" 7","margin":1}\n'
)


class FakeLoom:
    def __init__(self) -> None:
        self.attempt = 0
        self.queued = True
        self.cancelled = False
        self.status = "QUEUED"
        self.events: list[dict] = []
        self.metrics: dict = {}
        self.results: dict | None = None
        self.failed: str | None = None
        self.heartbeats = 0
        self.requests: list[tuple[str, str, dict | None]] = []
        self.lock = threading.Lock()
        loom = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: object | None = None, raw: bytes | None = None) -> None:
                data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                loom.requests.append((method, self.path, body))
                if self.headers.get("authorization") != f"Bearer {TOKEN}":
                    return self._send(403, {"message": "This route needs an API token scoped to training work."})
                with loom.lock:
                    status, answer, raw = loom.route(method, self.path, body)
                self._send(status, answer, raw)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def claim_body(self) -> dict:
        base = f"/api/engine/rounds/r1/attempts/{self.attempt}"
        return {
            "roundId": "r1", "projectId": "p1", "number": 1, "attempt": self.attempt,
            "leaseExpiresAt": "2026-01-01T00:00:00.000Z", "leaseSeconds": 60, "engine": "trl",
            "settings": {"baseModel": "tiny", "algorithm": "dpo", "lora": True, "loraRank": 4, "beta": 0.2,
                         "learningRate": 1e-4, "epochs": 2},
            "snapshot": {"id": "s1", "format": "trl", "rows": 2, "sha256": hashlib.sha256(SNAPSHOT).hexdigest(),
                         "path": f"{base}/snapshot"},
            "parent": {"id": "v0", "name": "base", "kind": "IMPORTED"},
            "comparisonPrompts": [{"id": "q1", "text": "2+2?", "messages": []}],
            "paths": {k: f"{base}/{k}" for k in ("heartbeat", "events", "metrics", "results", "fail")},
        }

    def route(self, method: str, path: str, body: dict | None):
        if path == "/api/engine/claim":
            if not self.queued:
                return 204, None, None
            self.queued = False
            self.attempt += 1
            self.status = "RUNNING"
            return 200, self.claim_body(), None
        parts = path.split("/")  # /api/engine/rounds/r1/attempts/N/what
        attempt, what = int(parts[6]), parts[7]
        if attempt != self.attempt:
            return 409, {"message": f"Attempt {attempt} no longer holds round 1: attempt {self.attempt} took it over."}, None
        if self.status != "RUNNING":
            return 409, {"message": f"Round 1 is {self.status.lower()}; send nothing more."}, None
        if what == "heartbeat":
            self.heartbeats += 1
            if self.cancelled:
                self.status = "CANCELLED"
                return 200, {"cancel": True, "leaseExpiresAt": None}, None
            return 200, {"cancel": False, "leaseExpiresAt": "2026-01-01T00:01:00.000Z"}, None
        if what == "events":
            self.events.extend(body["events"])
            return 200, {"accepted": len(body["events"])}, None
        if what == "metrics":
            self.metrics.update(body["metrics"])
            return 200, {"metrics": self.metrics}, None
        if what == "snapshot":
            return 200, None, SNAPSHOT
        if what == "results":
            self.results = body
            self.status = "SUCCEEDED"
            return 200, {"id": "r1", "number": 1, "status": "SUCCEEDED"}, None
        if what == "fail":
            self.failed = body["error"]
            self.status = "FAILED"
            return 200, {"id": "r1", "number": 1, "status": "FAILED"}, None
        return 404, {"message": "no such route"}, None

    def take_over(self) -> None:
        """The lease lapsed and another worker claimed: the attempt number moves on."""
        with self.lock:
            self.attempt += 1
