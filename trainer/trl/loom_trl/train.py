"""`run`: files in, files out, no network. The reward model with TRL's RewardTrainer (the snapshot's
margins), its held-out accuracy, then the policy with DPOTrainer, or RLOOTrainer / GRPOTrainer with
the trained reward model as the reward; optional LoRA through PEFT. Writes the models, metrics and
the new-vs-parent responses into the output folder. torch, transformers and trl are imported here
only, so the rest of the package runs without them. Runs under `accelerate launch` as well."""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

from .config import RoundSettings, lora_kwargs, policy_args, reward_args
from .snapshot import EventLog, accuracy, read_pairs, split_pairs, write_results


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _callback(events: EventLog, phase: str, should_stop: Callable[[], bool], span: tuple[float, float]):
    from transformers import TrainerCallback

    class LoomEvents(TrainerCallback):
        """Each logged step as a round event (loss, and reward/KL where TRL logs them)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            data = {}
            if "loss" in logs:
                data["loss"] = float(logs["loss"])
            for source, target in (
                ("rewards/accuracies", "meanScore"),
                ("reward", "meanScore"),
                ("kl", "kl"),
                ("objective/kl", "kl"),
                ("accuracy", "accuracy"),
            ):
                if source in logs:
                    data[target] = float(logs[source])
            if data:
                # The round's progress: the phase's share of it, as far as its steps went.
                fraction = None
                if state.max_steps:
                    done = min(1.0, state.global_step / state.max_steps)
                    fraction = span[0] + (span[1] - span[0]) * done
                events.write(phase, step=state.global_step, data=data, progress=fraction)

        def on_step_end(self, args, state, control, **kwargs):
            if should_stop():
                control.should_training_stop = True
            return control

    return LoomEvents()


def _dataset(rows: list[dict], columns: tuple[str, ...]):
    from datasets import Dataset

    return Dataset.from_dict({c: [r[c] for r in rows] for c in columns})


def _scores(model, tokenizer, texts: list[str], max_length: int) -> list[float]:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for text in texts:
            batch = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length).to(model.device)
            out.append(float(model(**batch).logits[0, 0]))
    return out


def _generate(model, tokenizer, prompts: list[str], max_new_tokens: int, seed: int) -> list[str]:
    import torch

    torch.manual_seed(seed)
    model.eval()
    texts = []
    for prompt in prompts:
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
            )
        else:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
        ids = ids.to(model.device)
        with torch.no_grad():
            output = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=1.0,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            )
        texts.append(tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True).strip() or "(empty)")
    return texts


def _generate_vllm(model_dir: str, prompts: list[str], max_new_tokens: int, seed: int) -> Optional[list[str]]:
    """vLLM when it is installed (a merged model folder); None otherwise."""
    try:
        from vllm import LLM, SamplingParams  # type: ignore
    except ImportError:
        return None
    llm = LLM(model=model_dir, seed=seed)
    outputs = llm.generate(prompts, SamplingParams(temperature=1.0, max_tokens=max_new_tokens, seed=seed))
    return [o.outputs[0].text.strip() or "(empty)" for o in outputs]


def run(snapshot: str, round_file: str, out_dir: str, overrides: Optional[dict] = None,
        should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Trains one round from files; returns (and writes) results.json's content."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    started = time.time()
    os.makedirs(out_dir, exist_ok=True)
    settings = RoundSettings.load(round_file, overrides)
    claim = settings.extra
    main = is_main_process()
    events = EventLog(out_dir, enabled=main)
    rows = read_pairs(snapshot)
    train_rows, test_rows = split_pairs(rows, settings.held_out, settings.seed)
    events.write("snapshot", message=f"{len(rows)} pairs ({len(train_rows)} train, {len(test_rows)} held out)",
                 progress=0.03)

    tokenizer = AutoTokenizer.from_pretrained(settings.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    # 1. Reward model: the base model with a scalar head, Bradley-Terry with the raters' margins.
    events.write("reward-model", message="Fitting the reward model (TRL RewardTrainer)", progress=0.05)
    rm = AutoModelForSequenceClassification.from_pretrained(settings.base_model, num_labels=1)
    rm.config.pad_token_id = tokenizer.pad_token_id
    rm_dir = os.path.join(out_dir, "reward_model")
    rm_lora = lora_kwargs(settings, "SEQ_CLS")
    reward_trainer = RewardTrainer(
        model=rm,
        args=RewardConfig(**reward_args(settings, os.path.join(out_dir, "checkpoints", "reward"))),
        train_dataset=_dataset(
            [{**r, "chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in train_rows],
            ("chosen", "rejected", "margin"),
        ),
        processing_class=tokenizer,
        peft_config=LoraConfig(**rm_lora) if rm_lora else None,
        callbacks=[_callback(events, "reward-model", should_stop, (0.05, 0.25))],
    )
    reward_trainer.train()
    rm = reward_trainer.model
    if rm_lora:
        rm = rm.merge_and_unload()
    scored = lambda rs, key: _scores(rm, tokenizer, [r["prompt"] + r[key] for r in rs], settings.max_length)
    held = accuracy(scored(test_rows, "chosen"), scored(test_rows, "rejected"))
    trained = accuracy(scored(train_rows[:256], "chosen"), scored(train_rows[:256], "rejected"))
    rm_metrics = {"heldOutAccuracy": held, "trainAccuracy": trained, "heldOutPairs": len(test_rows)}
    events.write("reward-model", message=f"Reward model: held-out accuracy {held:.3f}", data=rm_metrics,
                 progress=0.25)
    if main:
        rm.save_pretrained(rm_dir)
        tokenizer.save_pretrained(rm_dir)
    if should_stop():
        raise InterruptedError("cancelled")

    # 2. Policy.
    events.write("policy", message=f"Training the policy ({settings.algorithm.upper()})", progress=0.3)
    policy = AutoModelForCausalLM.from_pretrained(settings.base_model)
    lora = lora_kwargs(settings)
    peft_config = LoraConfig(**lora) if lora else None
    callbacks = [_callback(events, "policy", should_stop, (0.3, 0.9))]
    policy_dir_args = os.path.join(out_dir, "checkpoints", "policy")
    if settings.algorithm == "dpo":
        # A model made from a config has no hub path to load a reference from: pass one (unless LoRA,
        # where the base weights under the adapter are the reference).
        ref = None if lora else AutoModelForCausalLM.from_pretrained(settings.base_model)
        trainer = DPOTrainer(
            model=policy,
            ref_model=ref,
            args=DPOConfig(**policy_args(settings, policy_dir_args)),
            train_dataset=_dataset(rows, ("prompt", "chosen", "rejected")),
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    else:
        from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

        config_class, trainer_class = (RLOOConfig, RLOOTrainer) if settings.algorithm == "rloo" else (GRPOConfig, GRPOTrainer)
        prompts = sorted({r["prompt"] for r in rows})
        trainer = trainer_class(
            model=policy,
            reward_funcs=[rm],
            reward_processing_classes=[tokenizer],
            args=config_class(**policy_args(settings, policy_dir_args)),
            train_dataset=_dataset([{"prompt": p} for p in prompts], ("prompt",)),
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    result = trainer.train()
    if should_stop():
        raise InterruptedError("cancelled")
    policy = trainer.model
    policy_dir = os.path.join(out_dir, "policy")
    if main:
        trainer.save_model(policy_dir)  # the adapter alone under LoRA: serve it with vLLM's --lora-modules
        tokenizer.save_pretrained(policy_dir)
    policy_loss = float(result.training_loss)

    # 3. New-vs-parent responses for the round's comparison prompts.
    events.write("comparisons", message="Sampling new and parent responses for raters", progress=0.9)
    comparison = claim.get("comparisonPrompts") or []
    texts = [p["text"] for p in comparison]
    responses = []
    if texts and main:
        merged = policy.merge_and_unload() if lora else policy
        mine = None
        if not lora:
            mine = _generate_vllm(policy_dir, texts, settings.max_new_tokens, settings.seed)
        if mine is None:
            mine = _generate(merged, tokenizer, texts, settings.max_new_tokens, settings.seed)
        del merged
        parent = AutoModelForCausalLM.from_pretrained(settings.base_model).to(
            "cuda" if torch.cuda.is_available() else "cpu"
        )
        theirs = _generate(parent, tokenizer, texts, settings.max_new_tokens, settings.seed + 1)
        responses = [
            {"promptId": p["id"], "text": a, "parentText": b} for p, a, b in zip(comparison, mine, theirs)
        ]

    seconds = time.time() - started
    results = {
        "rewardModel": {"metrics": rm_metrics},
        "version": {"kind": "IMPORTED"},
        "responses": responses,
        "metrics": {
            "engine": "trl",
            "algorithm": settings.algorithm,
            "policyLoss": policy_loss,
            "rewardModelValAccuracy": held,
            "wallSeconds": round(seconds, 1),
            "lora": settings.lora,
        },
    }
    if main:
        write_results(out_dir, results)
        events.write("evaluation", message=f"Trained in {seconds:.0f} s", progress=0.95)
    return results
