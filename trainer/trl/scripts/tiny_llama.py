"""Builds a tiny Llama and its tokenizer from local text only (no downloads), for checking a round
end to end where no real model is at hand: a byte-level BPE tokenizer trained on the texts of a
Loom snapshot (or any JSONL/text files) and a LlamaForCausalLM with random weights, saved with
`save_pretrained` into OUT, which a round then names as its base model.

    python trainer/trl/scripts/tiny_llama.py --text snapshot.jsonl --out tiny-llama
    python -m loom_trl run --snapshot snapshot.jsonl --config round.json --out out \
        --set base_model=tiny-llama --set max_length=256

Needs torch, transformers and tokenizers (the `train` extra)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Iterator

SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]


def texts_of(path: str) -> Iterator[str]:
    """Every string in a JSONL file's rows (prompt, chosen, rejected, messages' content), or a text
    file's lines."""
    with open(path, encoding="utf-8") as file:
        for line in file:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                yield line
                continue
            stack = [row]
            while stack:
                value = stack.pop()
                if isinstance(value, str):
                    yield value
                elif isinstance(value, dict):
                    stack.extend(value.values())
                elif isinstance(value, list):
                    stack.extend(value)


def build(text_files: list[str], out: str, vocab_size: int, hidden: int, layers: int, heads: int,
          context: int, seed: int) -> dict:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator((t for path in text_files for t in texts_of(path)), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>", model_max_length=context)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=context,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return {"out": out, "vocab": len(fast), "parameters": sum(p.numel() for p in model.parameters())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", action="append", required=True,
                        help="a JSONL or text file to train the tokenizer on (repeatable)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for path in args.text:
        if not os.path.isfile(path):
            print(f"tiny_llama: {path}: no such file", file=sys.stderr)
            return 2
    info = build(args.text, args.out, args.vocab_size, args.hidden, args.layers, args.heads, args.context,
                 args.seed)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
