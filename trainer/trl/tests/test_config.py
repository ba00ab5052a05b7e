"""The claim's settings and their mapping onto TRL's and PEFT's arguments, and the snapshot files."""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from loom_trl.config import RoundSettings, grpo_args, lora_kwargs, policy_args, reward_args, rloo_args
from loom_trl.snapshot import (
    EventLog,
    accuracy,
    held_out,
    read_events,
    read_pairs,
    split_pairs,
    to_protocol_events,
)

CLAIM = {
    "roundId": "r1",
    "number": 3,
    "attempt": 2,
    "settings": {"baseModel": "meta-llama/Llama-3.2-1B", "algorithm": "dpo", "lora": True, "loraRank": 8,
                 "beta": 0.2, "learningRate": 1e-5, "epochs": 2},
    "comparisonPrompts": [{"id": "q1", "text": "hi"}],
}


class ConfigTest(unittest.TestCase):
    def test_claim_settings(self):
        s = RoundSettings.from_claim(CLAIM)
        self.assertEqual((s.base_model, s.algorithm, s.lora, s.lora_rank, s.beta, s.learning_rate, s.epochs),
                         ("meta-llama/Llama-3.2-1B", "dpo", True, 8, 0.2, 1e-5, 2))
        self.assertEqual(s.extra["comparisonPrompts"], [{"id": "q1", "text": "hi"}])
        self.assertNotIn("settings", s.extra)

    def test_defaults_match_loom(self):
        s = RoundSettings.from_claim({"settings": {"baseModel": "/models/base"}})
        self.assertEqual((s.algorithm, s.lora, s.lora_rank, s.beta, s.learning_rate, s.epochs),
                         ("dpo", True, 16, 0.1, 5e-6, 1))

    def test_bad_settings_are_refused(self):
        for settings in ({"baseModel": " "}, {"baseModel": "m", "algorithm": "ppo"},
                         {"baseModel": "m", "loraRank": 0}, {"baseModel": "m", "epochs": 0}):
            with self.assertRaises(ValueError):
                RoundSettings.from_claim({"settings": settings})

    def test_dpo_maps_onto_dpoconfig(self):
        args = policy_args(RoundSettings.from_claim(CLAIM), "/out")
        self.assertEqual(args["beta"], 0.2)
        self.assertEqual(args["learning_rate"], 1e-5)
        self.assertEqual(args["num_train_epochs"], 2)
        self.assertEqual(args["output_dir"], "/out")
        self.assertEqual(args["report_to"], "none")
        self.assertEqual(args["logging_steps"], 1, "every step becomes a loss event")

    def test_reward_model_uses_its_own_learning_rate(self):
        args = reward_args(RoundSettings.from_claim(CLAIM), "/rm")
        self.assertEqual(args["learning_rate"], 1e-5)
        self.assertNotIn("beta", args)
        self.assertEqual(args["max_length"], 1024)

    def test_rloo_and_grpo(self):
        rloo = RoundSettings.from_claim({"settings": {**CLAIM["settings"], "algorithm": "rloo"}})
        self.assertEqual(rloo_args(rloo, "/o")["num_generations"], 2)
        self.assertIs(policy_args(rloo, "/o")["num_generations"], 2)
        grpo = RoundSettings.from_claim({"settings": {**CLAIM["settings"], "algorithm": "grpo"}})
        args = grpo_args(grpo, "/o")
        self.assertEqual(args["num_generations"], 8)
        self.assertEqual(args["per_device_train_batch_size"] % 8, 0, "whole groups per batch")

    def test_lora(self):
        s = RoundSettings.from_claim(CLAIM)
        self.assertEqual(lora_kwargs(s), {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05,
                                          "target_modules": "all-linear", "task_type": "CAUSAL_LM"})
        self.assertEqual(lora_kwargs(s, "SEQ_CLS")["task_type"], "SEQ_CLS")
        full = RoundSettings.from_claim({"settings": {**CLAIM["settings"], "lora": False}})
        self.assertIsNone(lora_kwargs(full))

    def test_local_overrides_from_round_json(self):
        path = os.path.join(tempfile.mkdtemp(), "round.json")
        with open(path, "w") as file:
            json.dump({**CLAIM, "local": {"batch_size": 16, "bf16": True}}, file)
        s = RoundSettings.load(path, {"max_new_tokens": 32})
        self.assertEqual((s.batch_size, s.bf16, s.max_new_tokens), (16, True, 32))


class SnapshotTest(unittest.TestCase):
    def test_set_overrides_read_json_or_keep_text(self):
        from loom_trl.cli import parse_overrides

        self.assertEqual(
            parse_overrides(["batch_size=8", "bf16=true", "reward_learning_rate=1e-5", "base_model=tiny-llama",
                             "base_model2=/models/x", "held_out=0.1", "name=null-model"]),
            {"batch_size": 8, "bf16": True, "reward_learning_rate": 1e-5, "base_model": "tiny-llama",
             "base_model2": "/models/x", "held_out": 0.1, "name": "null-model"},
        )
        with self.assertRaises(ValueError):
            parse_overrides(["no-equals-sign"])

    def test_rows_margins_and_conversations(self):
        path = os.path.join(tempfile.mkdtemp(), "s.jsonl")
        with open(path, "w") as file:
            file.write(json.dumps({"prompt": "2+2?", "chosen": " 4", "rejected": " 5", "margin": 2}) + "\n\n")
            file.write(json.dumps({"prompt": [{"role": "user", "content": "hi"}],
                                   "chosen": [{"role": "assistant", "content": "hello"}],
                                   "rejected": [{"role": "assistant", "content": "go"}]}) + "\n")
        rows = read_pairs(path)
        self.assertEqual(rows[0], {"prompt": "2+2?", "chosen": " 4", "rejected": " 5", "margin": 2.0})
        self.assertEqual(rows[1]["prompt"], "hi")
        self.assertEqual(rows[1]["margin"], 0.0)

    def test_split_keeps_a_prompt_on_one_side_and_repeats(self):
        rows = [{"prompt": f"p{i % 40}", "chosen": "a", "rejected": "b", "margin": 0} for i in range(400)]
        train, test = split_pairs(rows, 0.2)
        self.assertEqual(len(train) + len(test), 400)
        self.assertFalse({r["prompt"] for r in train} & {r["prompt"] for r in test})
        self.assertTrue(0.05 < len(test) / 400 < 0.4)
        self.assertEqual(split_pairs(rows, 0.2), (train, test))
        self.assertEqual(held_out("p1", 0.2), held_out("p1", 0.2))

    def test_accuracy(self):
        self.assertEqual(accuracy([1, 2, 3, 0], [0, 1, 4, 0]), 0.5)
        self.assertEqual(accuracy([], []), 0.0)

    def test_event_log_round_trip(self):
        out = tempfile.mkdtemp()
        log = EventLog(out)
        log.write("policy", step=1, data={"loss": 0.5, "skip": [1]}, progress=0.4)
        log.write("policy", message="done")
        EventLog(out, enabled=False).write("policy", message="not the main process")
        events, offset = read_events(log.path)
        self.assertEqual(len(events), 2)
        protocol, progress = to_protocol_events(events)
        self.assertEqual(protocol[0], {"phase": "policy", "step": 1, "data": {"loss": 0.5}})
        self.assertEqual(progress, 0.4)
        self.assertEqual(read_events(log.path, offset), ([], offset))


if __name__ == "__main__":
    unittest.main()
