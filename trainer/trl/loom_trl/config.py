"""A round's settings (from the claim Loom answered, saved as round.json) and their mapping onto
TRL's configs: RewardConfig, DPOConfig, RLOOConfig, GRPOConfig and PEFT's LoraConfig. Plain dicts
of keyword arguments, so the mapping is testable without torch or trl installed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

ALGORITHMS = ("dpo", "rloo", "grpo")


@dataclass
class RoundSettings:
    """What a round trains with; every default is the one Loom's launch form starts from."""

    base_model: str  # local path or hub name of the policy to start from
    algorithm: str = "dpo"  # dpo: preferences into the policy; rloo/grpo: online RL on the reward model
    lora: bool = True  # a PEFT adapter instead of every weight
    lora_rank: int = 16  # LoRA r; alpha is 2r
    beta: float = 0.1  # DPO β / KL coefficient
    learning_rate: float = 5e-6  # the policy's
    epochs: int = 1  # passes over the snapshot (policy and reward model)
    reward_learning_rate: float = 1e-5  # the reward model's (TRL's RewardConfig example value)
    batch_size: int = 4  # per device
    gradient_accumulation: int = 1
    max_length: int = 1024  # prompt + response tokens
    max_new_tokens: int = 128  # generation for comparisons and RL rollouts
    held_out: float = 0.2  # share of prompts the reward model is evaluated on
    seed: int = 1
    bf16: bool = False  # set where the GPU supports it
    extra: dict = field(default_factory=dict)  # the claim's other fields, kept as they came

    def __post_init__(self) -> None:
        if not self.base_model or not self.base_model.strip():
            raise ValueError("settings.baseModel is required")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)} (got {self.algorithm!r})")
        if self.lora_rank < 1:
            raise ValueError("loraRank must be at least 1")
        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if not 0 < self.held_out < 1:
            raise ValueError("held_out must lie between 0 and 1")

    @classmethod
    def from_claim(cls, claim: dict, overrides: Optional[dict] = None) -> "RoundSettings":
        """From Loom's claim (its `settings`), with local overrides (batch size, bf16, ...)."""
        s = dict(claim.get("settings") or {})
        values: dict[str, Any] = {
            "base_model": s.get("baseModel", ""),
            "algorithm": s.get("algorithm", "dpo"),
            "lora": bool(s.get("lora", True)),
            "lora_rank": int(s.get("loraRank", 16)),
            "beta": float(s.get("beta", 0.1)),
            "learning_rate": float(s.get("learningRate", 5e-6)),
            "epochs": int(s.get("epochs", 1)),
        }
        values.update(overrides or {})
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known, extra={k: v for k, v in claim.items() if k != "settings"})

    @classmethod
    def load(cls, path: str, overrides: Optional[dict] = None) -> "RoundSettings":
        with open(path, encoding="utf-8") as file:
            claim = json.load(file)
        return cls.from_claim(claim, (claim.get("local") or {}) | (overrides or {}))


def _common(settings: RoundSettings, output_dir: str) -> dict:
    return {
        "output_dir": output_dir,
        "num_train_epochs": settings.epochs,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": settings.seed,
        "bf16": settings.bf16,
    }


def reward_args(settings: RoundSettings, output_dir: str) -> dict:
    """RewardConfig: Bradley-Terry with the rater's margin (the snapshot's `margin` column)."""
    return _common(settings, output_dir) | {
        "learning_rate": settings.reward_learning_rate,
        "max_length": settings.max_length,
    }


def dpo_args(settings: RoundSettings, output_dir: str) -> dict:
    return _common(settings, output_dir) | {
        "learning_rate": settings.learning_rate,
        "beta": settings.beta,
        "max_length": settings.max_length,
    }


def rloo_args(settings: RoundSettings, output_dir: str) -> dict:
    """RLOOConfig: k = 2 samples a prompt (TRL's default), KL folded into the reward with β."""
    return _common(settings, output_dir) | {
        "learning_rate": settings.learning_rate,
        "beta": settings.beta,
        "num_generations": 2,
        "max_completion_length": settings.max_new_tokens,
    }


def grpo_args(settings: RoundSettings, output_dir: str) -> dict:
    """GRPOConfig: 8 samples a prompt, advantages normalised within each prompt's group."""
    batch = max(settings.batch_size, 8)  # the generation batch must hold whole groups
    return _common(settings, output_dir) | {
        "per_device_train_batch_size": batch,
        "learning_rate": settings.learning_rate,
        "beta": settings.beta,
        "num_generations": 8,
        "max_completion_length": settings.max_new_tokens,
    }


def policy_args(settings: RoundSettings, output_dir: str) -> dict:
    return {"dpo": dpo_args, "rloo": rloo_args, "grpo": grpo_args}[settings.algorithm](settings, output_dir)


def lora_kwargs(settings: RoundSettings, task_type: str = "CAUSAL_LM") -> Optional[dict]:
    """PEFT LoraConfig keyword arguments, or None for full fine-tuning (the reward model uses SEQ_CLS)."""
    if not settings.lora:
        return None
    return {
        "r": settings.lora_rank,
        "lora_alpha": 2 * settings.lora_rank,
        "lora_dropout": 0.05,
        "target_modules": "all-linear",
        "task_type": task_type,
    }
