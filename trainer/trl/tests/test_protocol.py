"""The worker's protocol client and `work` loop against a fake Loom on an in-process http.server."""

import json
import os
import sys
import tempfile
import time
import unittest

# Runs as `python3 -m unittest discover trainer/trl/tests` from the repository root: the package
# and the fake server are found beside this file.
sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.path.dirname(os.path.abspath(__file__))]

from loom_trl.cli import upload, work_once
from loom_trl.protocol import FencedOut, Heartbeat, LoomClient, LoomError
from loom_trl.snapshot import EventLog, write_results

from fake_loom import SNAPSHOT, TOKEN, FakeLoom


class ProtocolTest(unittest.TestCase):
    def setUp(self):
        self.loom = FakeLoom()
        self.client = LoomClient(self.loom.url, TOKEN, timeout=5)
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        self.loom.close()

    def test_claim_heartbeat_events_snapshot_results(self):
        attempt = self.client.claim(worker="gpu-a", lease_seconds=60)
        self.assertEqual(attempt.attempt, 1)
        self.assertEqual(self.loom.requests[0][2], {"engine": "trl", "leaseSeconds": 60, "worker": "gpu-a"})
        self.assertIsNone(self.client.claim(), "nothing else waits")
        self.assertFalse(self.client.heartbeat(attempt, 60))
        self.assertEqual(self.client.events(attempt, [{"phase": "policy", "step": 1, "data": {"loss": 0.5}}],
                                            progress=1.7), 1)
        self.assertEqual(self.loom.requests[-1][2]["progress"], 1.0, "progress is clamped to 0..1")
        self.assertEqual(self.client.metrics(attempt, {"a": 1}), {"a": 1})
        path = os.path.join(self.dir, "snapshot.jsonl")
        self.client.download_snapshot(attempt, path)
        with open(path, "rb") as file:
            self.assertEqual(file.read(), SNAPSHOT)
        self.assertEqual(self.client.results(attempt, {"x": 1})["status"], "SUCCEEDED")
        with self.assertRaises(FencedOut) as ended:
            self.client.heartbeat(attempt)
        self.assertIn("succeeded", ended.exception.message)

    def test_a_wrong_token_is_refused_with_loom_message(self):
        with self.assertRaises(LoomError) as refused:
            LoomClient(self.loom.url, "plain").claim()
        self.assertEqual(refused.exception.status, 403)
        self.assertIn("scoped to training", refused.exception.message)
        self.assertNotIsInstance(refused.exception, FencedOut)

    def test_a_fenced_out_attempt_gets_409_on_every_call(self):
        attempt = self.client.claim()
        self.loom.take_over()
        for call in (lambda: self.client.heartbeat(attempt), lambda: self.client.results(attempt, {}),
                     lambda: self.client.events(attempt, [])):
            with self.assertRaises(FencedOut) as refused:
                call()
            self.assertEqual(refused.exception.status, 409)
            self.assertIn("attempt 2 took it over", refused.exception.message)
        self.assertIsNone(self.loom.results)

    def test_a_snapshot_whose_hash_differs_is_refused(self):
        attempt = self.client.claim()
        attempt.claim["snapshot"]["sha256"] = "0" * 64
        with self.assertRaises(LoomError):
            self.client.download_snapshot(attempt, os.path.join(self.dir, "s.jsonl"))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "s.jsonl")))

    def test_heartbeat_thread_learns_of_cancellation(self):
        attempt = self.client.claim()
        beat = Heartbeat(self.client, attempt, lease_seconds=60, every=0.05)
        beat.start()
        time.sleep(0.2)
        self.assertFalse(beat.cancelled.is_set())
        self.loom.cancelled = True
        beat.join(timeout=5)
        self.assertTrue(beat.cancelled.is_set())
        self.assertGreaterEqual(self.loom.heartbeats, 2)


def fake_runner(results=None, fail=None, wait_for_stop=False):
    """Stands in for `run` (which needs torch): writes events and results.json as it would."""

    def runner(snapshot, round_file, out_dir, should_stop):
        with open(round_file, encoding="utf-8") as file:
            claim = json.load(file)
        assert os.path.getsize(snapshot) == len(SNAPSHOT)
        events = EventLog(out_dir)
        for step in range(3):
            events.write("reward-model", step=step, data={"loss": [0.7, 0.6, 0.5][step]}, progress=0.1 * step)
        if wait_for_stop:
            deadline = time.time() + 10
            while not should_stop() and time.time() < deadline:
                time.sleep(0.05)
            raise InterruptedError("stopped")
        if fail:
            raise RuntimeError(fail)
        write_results(out_dir, results or {
            "rewardModel": {"metrics": {"heldOutAccuracy": 0.75}},
            "version": {"kind": "IMPORTED"},
            "responses": [{"promptId": p["id"], "text": "4", "parentText": "5"} for p in claim["comparisonPrompts"]],
            "metrics": {"policyLoss": 0.4},
        })

    return runner


class WorkTest(unittest.TestCase):
    def setUp(self):
        self.loom = FakeLoom()
        self.client = LoomClient(self.loom.url, TOKEN, timeout=5)
        self.root = tempfile.mkdtemp()

    def tearDown(self):
        self.loom.close()

    def work(self, runner, **kwargs):
        return work_once(self.client, self.root, runner, "gpu-a", lease_seconds=60, poll=0.05,
                         log=lambda *_: None, **kwargs)

    def test_one_round_end_to_end(self):
        self.assertEqual(self.work(fake_runner(), endpoint_url="http://vllm:8000/v1", endpoint_model="r1"),
                         "succeeded")
        self.assertEqual([e["data"]["loss"] for e in self.loom.events], [0.7, 0.6, 0.5])
        self.assertEqual(self.loom.results["version"],
                         {"kind": "EXTERNAL", "endpointUrl": "http://vllm:8000/v1", "endpointModel": "r1"})
        self.assertEqual(self.loom.results["responses"], [{"promptId": "q1", "text": "4", "parentText": "5"}])
        self.assertIsNone(self.work(fake_runner()), "nothing left to claim")

    def test_a_failing_run_fails_the_round_with_its_reason(self):
        self.assertEqual(self.work(fake_runner(fail="CUDA out of memory")), "failed")
        self.assertEqual(self.loom.failed, "RuntimeError: CUDA out of memory")

    def test_cancellation_stops_the_run(self):
        self.loom.cancelled = True
        beat = Heartbeat.__init__.__defaults__  # the thread beats every lease/4 s: make it quick
        self.addCleanup(setattr, Heartbeat.__init__, "__defaults__", beat)
        Heartbeat.__init__.__defaults__ = (120, 0.05, None)
        self.assertEqual(self.work(fake_runner(wait_for_stop=True)), "cancelled")
        self.assertIsNone(self.loom.results)

    def test_upload_sends_an_offline_run(self):
        attempt = self.client.claim()
        out = os.path.join(self.root, "offline")
        from loom_trl.cli import prepare

        prepare(self.client, attempt, out)
        fake_runner()(os.path.join(out, "snapshot.jsonl"), os.path.join(out, "round.json"), out, lambda: False)
        answer = upload(self.client, out)
        self.assertEqual(answer["status"], "SUCCEEDED")
        self.assertEqual(len(self.loom.events), 3)
        self.assertEqual(self.loom.results["rewardModel"]["metrics"]["heldOutAccuracy"], 0.75)


if __name__ == "__main__":
    unittest.main()
