"""The worker's commands:
  run    --snapshot FILE --config round.json --out DIR   train from files (no network)
  claim  --url URL --token TOKEN --out DIR                claim a round, write round.json + snapshot
  upload --url URL --token TOKEN DIR                      send a finished DIR as the round's results
  work   --url URL --token TOKEN                          claim, download, run, upload, heartbeat
The token is an API token scoped to training (LOOM_TOKEN in the environment works too)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from typing import Callable, Optional

from .protocol import Attempt, FencedOut, Heartbeat, LoomClient, LoomError
from .snapshot import (
    EVENTS_FILE,
    RESULTS_FILE,
    ROUND_FILE,
    SNAPSHOT_FILE,
    read_events,
    read_json,
    to_protocol_events,
)


def parse_overrides(items: list[str]) -> dict:
    """`--set KEY=VALUE` items as a dict: a VALUE that reads as JSON (8, 1e-5, true, [1]) is that
    value, anything else (a path, a hub name) the text itself."""
    overrides: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def prepare(client: LoomClient, attempt: Attempt, out_dir: str, local: Optional[dict] = None) -> None:
    """round.json (the claim, with local overrides) and the snapshot, checked, into DIR."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ROUND_FILE), "w", encoding="utf-8") as file:
        json.dump({**attempt.claim, "local": local or {}}, file, indent=2)
    client.download_snapshot(attempt, os.path.join(out_dir, SNAPSHOT_FILE))


class EventForwarder:
    """Sends the lines events.jsonl gained since the last call."""

    def __init__(self, client: LoomClient, attempt: Attempt, out_dir: str):
        self.client, self.attempt = client, attempt
        self.path = os.path.join(out_dir, EVENTS_FILE)
        self.offset = 0

    def flush(self) -> int:
        sent = 0
        while True:
            events, offset = read_events(self.path, self.offset)
            if not events:
                return sent
            batch = events[:500]
            protocol_events, progress = to_protocol_events(batch)
            self.client.events(self.attempt, protocol_events, progress=progress)
            sent += len(batch)
            if len(batch) == len(events):
                self.offset = offset
                return sent
            # Only part sent: advance past exactly those lines.
            _, self.offset = _offset_after(self.path, self.offset, len(batch))


def _offset_after(path: str, start: int, lines: int) -> tuple[None, int]:
    with open(path, "rb") as file:
        file.seek(start)
        for _ in range(lines):
            start += len(file.readline())
    return None, start


def upload(client: LoomClient, out_dir: str, endpoint_url: Optional[str] = None,
           endpoint_model: Optional[str] = None, send_events: bool = True) -> dict:
    """Sends DIR's events (unless already forwarded) and results.json for the attempt round.json names."""
    attempt = Attempt(read_json(os.path.join(out_dir, ROUND_FILE)))
    results = read_json(os.path.join(out_dir, RESULTS_FILE))
    if endpoint_url:
        results["version"] = {"kind": "EXTERNAL", "endpointUrl": endpoint_url,
                              "endpointModel": endpoint_model or f"round-{attempt.claim['number']}"}
    if send_events:
        EventForwarder(client, attempt, out_dir).flush()
    return client.results(attempt, results)


Runner = Callable[[str, str, str, Callable[[], bool]], None]


def subprocess_runner(launcher: str) -> Runner:
    """`run` in a child process, under a launcher such as `accelerate launch --config_file ds.yaml`."""

    def runner(snapshot: str, round_file: str, out_dir: str, should_stop: Callable[[], bool]) -> None:
        prefix = shlex.split(launcher) if launcher else [sys.executable]
        command = prefix + ["-m", "loom_trl", "run", "--snapshot", snapshot, "--config", round_file, "--out", out_dir]
        child = subprocess.Popen(command)
        while child.poll() is None:
            if should_stop():
                child.terminate()
                child.wait(timeout=60)
                raise InterruptedError("stopped")
            time.sleep(1)
        if child.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` exited with {child.returncode}")

    return runner


def work_once(client: LoomClient, root: str, runner: Runner, worker: Optional[str] = None,
              lease_seconds: int = 120, endpoint_url: Optional[str] = None,
              endpoint_model: Optional[str] = None, poll: float = 5.0, log=print,
              local: Optional[dict] = None) -> Optional[str]:
    """One round: claim, download, run (events forwarded live), upload. Returns how it ended
    ('succeeded', 'failed', 'cancelled', 'fenced') or None when there was nothing to claim."""
    attempt = client.claim(worker=worker, lease_seconds=lease_seconds)
    if attempt is None:
        return None
    out_dir = os.path.join(root, f"round-{attempt.claim['number']}-{attempt.round_id[:8]}-attempt-{attempt.attempt}")
    log(f"claimed round {attempt.claim['number']} (attempt {attempt.attempt}) into {out_dir}")
    heartbeat = Heartbeat(client, attempt, lease_seconds)
    heartbeat.start()
    forwarder = EventForwarder(client, attempt, out_dir)
    stop = lambda: heartbeat.cancelled.is_set() or heartbeat.fenced.is_set()
    try:
        prepare(client, attempt, out_dir, local)
        error: list[BaseException] = []

        import threading

        def target() -> None:
            try:
                runner(os.path.join(out_dir, SNAPSHOT_FILE), os.path.join(out_dir, ROUND_FILE), out_dir, stop)
            except BaseException as exc:  # reported below, in this thread
                error.append(exc)

        thread = threading.Thread(target=target, name="loom-run")
        thread.start()
        while thread.is_alive():
            thread.join(poll)
            if not stop():
                forwarder.flush()
        if heartbeat.cancelled.is_set():
            log("the round was cancelled in Loom; stopped")
            return "cancelled"
        if heartbeat.fenced.is_set():
            log("another attempt took the round over; stopped")
            return "fenced"
        if error:
            raise error[0]
        forwarder.flush()
        upload(client, out_dir, endpoint_url, endpoint_model, send_events=False)
        log(f"round {attempt.claim['number']} published")
        return "succeeded"
    except FencedOut as refused:
        # Loom refuses every call of an attempt once its round is cancelled: a call that raced the
        # heartbeat that learnt of the cancellation ends the same way (the beat in flight is
        # awaited, so its answer is known).
        heartbeat.stop()
        heartbeat.join(timeout=client.timeout + 1)
        if heartbeat.cancelled.is_set() or "cancelled" in refused.message:
            log("the round was cancelled in Loom; stopped")
            return "cancelled"
        log(f"refused: {refused.message}")
        return "fenced"
    except Exception as exc:  # noqa: BLE001 - any failure ends the round with its reason
        try:
            client.fail(attempt, f"{type(exc).__name__}: {exc}")
        except FencedOut:
            return "fenced"
        log(f"round failed: {exc}")
        return "failed"
    finally:
        heartbeat.stop()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="loom_trl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    run_p = commands.add_parser("run", help="train from files, no network")
    run_p.add_argument("--snapshot", required=True)
    run_p.add_argument("--config", required=True, help="round.json (the claim)")
    run_p.add_argument("--out", required=True)
    run_p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="local override, e.g. batch_size=8 bf16=true max_new_tokens=64")

    def connection(p):
        p.add_argument("--url", required=True, help="Loom's address, e.g. https://loom.example.org")
        p.add_argument("--token", default=os.environ.get("LOOM_TOKEN"), help="training token (or LOOM_TOKEN)")

    claim_p = commands.add_parser("claim", help="claim a round and write round.json and the snapshot")
    connection(claim_p)
    claim_p.add_argument("--out", required=True)
    claim_p.add_argument("--lease-seconds", type=int, default=24 * 3600,
                         help="long enough for the offline run (no heartbeats)")
    claim_p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="local override kept in round.json for `run`")

    upload_p = commands.add_parser("upload", help="send a finished DIR as the round's results")
    connection(upload_p)
    upload_p.add_argument("dir")
    upload_p.add_argument("--endpoint-url", help="where the new version is served (makes it EXTERNAL)")
    upload_p.add_argument("--endpoint-model", help="the model name at that endpoint")

    work_p = commands.add_parser("work", help="claim rounds and run them, heartbeating throughout")
    connection(work_p)
    work_p.add_argument("--dir", default="loom-rounds", help="where rounds' folders go")
    work_p.add_argument("--launcher", default="", help='e.g. "accelerate launch --config_file zero3.yaml"')
    work_p.add_argument("--lease-seconds", type=int, default=120)
    work_p.add_argument("--poll-seconds", type=float, default=30)
    work_p.add_argument("--once", action="store_true", help="stop after one round (or none waiting)")
    work_p.add_argument("--endpoint-url")
    work_p.add_argument("--endpoint-model")
    work_p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="local override for every round it runs, e.g. batch_size=8 bf16=true")

    args = parser.parse_args(argv)
    if args.command == "run":
        from .train import run

        results = run(args.snapshot, args.config, args.out, parse_overrides(args.set))
        print(json.dumps(results["metrics"]))
        return 0
    if not args.token:
        parser.error("--token (or LOOM_TOKEN) is required")
    try:
        local = parse_overrides(args.set) if args.command in ("claim", "work") else {}
    except ValueError as problem:
        parser.error(str(problem))
    client = LoomClient(args.url, args.token)
    try:
        if args.command == "claim":
            attempt = client.claim(worker=socket.gethostname(), lease_seconds=args.lease_seconds)
            if attempt is None:
                print("no round is waiting")
                return 3
            prepare(client, attempt, args.out, local)
            print(f"round {attempt.claim['number']} attempt {attempt.attempt} in {args.out}")
            return 0
        if args.command == "upload":
            round_ = upload(client, args.dir, args.endpoint_url, args.endpoint_model)
            print(f"round {round_['number']}: {round_['status'].lower()}")
            return 0
        runner = subprocess_runner(args.launcher)
        while True:
            ended = work_once(client, args.dir, runner, socket.gethostname(), args.lease_seconds,
                              args.endpoint_url, args.endpoint_model, local=local)
            if args.once:
                return 0 if ended in (None, "succeeded") else 1
            if ended is None:
                time.sleep(args.poll_seconds)
    except LoomError as error:
        print(f"Loom refused: {error.message}", file=sys.stderr)
        return 2
