"""Loom's round snapshot (TRL preference JSONL: prompt, chosen, rejected, margin) and the files a
run leaves in its output folder: round.json (the claim), events.jsonl, results.json. Standard
library only."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable, Optional

ROUND_FILE = "round.json"
SNAPSHOT_FILE = "snapshot.jsonl"
EVENTS_FILE = "events.jsonl"
RESULTS_FILE = "results.json"


def text_of(value) -> str:
    """A prompt or response as text: conversational rows (lists of messages) joined by turn."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
    return "" if value is None else str(value)


def read_pairs(path: str) -> list[dict]:
    """The snapshot's rows as {prompt, chosen, rejected, margin} with text fields."""
    rows = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "chosen" not in row or "rejected" not in row:
                raise ValueError(f"{path}:{number}: a row needs chosen and rejected")
            rows.append({
                "prompt": text_of(row.get("prompt", "")),
                "chosen": text_of(row["chosen"]),
                "rejected": text_of(row["rejected"]),
                "margin": float(row.get("margin", 0.0) or 0.0),
            })
    return rows


def held_out(prompt: str, share: float, seed: int = 1) -> bool:
    """Whether a prompt belongs to the held-out split: by a hash of its text, so every judgment of
    one prompt lands on the same side and a rerun splits the same way."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def split_pairs(rows: list[dict], share: float, seed: int = 1) -> tuple[list[dict], list[dict]]:
    train = [r for r in rows if not held_out(r["prompt"], share, seed)]
    test = [r for r in rows if held_out(r["prompt"], share, seed)]
    if not test and len(train) > 1:  # a tiny snapshot still gets one held-out pair
        test, train = train[-1:], train[:-1]
    return train, test


def accuracy(chosen_scores: Iterable[float], rejected_scores: Iterable[float]) -> float:
    """Share of pairs the reward model orders as the raters did (r(y+) > r(y-))."""
    pairs = list(zip(chosen_scores, rejected_scores))
    return sum(1 for c, r in pairs if c > r) / len(pairs) if pairs else 0.0


class EventLog:
    """events.jsonl: what the Rounds page charts. `work` forwards new lines live; `upload` sends
    the rest. Only the main process of a multi-GPU run writes."""

    def __init__(self, out_dir: str, enabled: bool = True):
        self.path = os.path.join(out_dir, EVENTS_FILE)
        self.enabled = enabled

    def write(self, phase: str, step: Optional[int] = None, data: Optional[dict] = None,
              message: Optional[str] = None, progress: Optional[float] = None) -> None:
        if not self.enabled:
            return
        event: dict = {"phase": phase}
        if step is not None:
            event["step"] = int(step)
        if data:
            event["data"] = {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool))}
        if message:
            event["message"] = message[:2000]
        if progress is not None:
            event["progress"] = progress
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(event) + "\n")


def read_events(path: str, start: int = 0) -> tuple[list[dict], int]:
    """Complete lines from byte offset `start`; returns them and the offset after the last one."""
    if not os.path.exists(path):
        return [], start
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read()
    end = data.rfind(b"\n") + 1
    lines = data[:end].decode("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()], start + end


def to_protocol_events(events: list[dict]) -> tuple[list[dict], Optional[float]]:
    """Events as the protocol takes them, and the latest progress among them."""
    progress = None
    out = []
    for event in events:
        event = dict(event)
        if "progress" in event:
            progress = event.pop("progress")
        out.append(event)
    return out, progress


def write_results(out_dir: str, results: dict) -> str:
    path = os.path.join(out_dir, RESULTS_FILE)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    return path


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as file:
        return json.load(file)
