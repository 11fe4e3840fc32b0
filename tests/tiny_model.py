"""Builds a tiny random GPT-2 with a byte-level BPE tokenizer, offline, in well under a second."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

EOS = "<|endoftext|>"

# Mixed scripts so the tokenizer learns merges over multi-byte characters too.
CORPUS = (
    "Once upon a time there was a little robot who loved to continue stories.",
    "The quick brown fox jumps over the lazy dog, again and again.",
    "Café, crème brûlée, naïve façade, Grüße aus München, ¿qué tal?",
    "Emoji are fun 🎉🚀✨ and so are kanji 日本語 and Cyrillic привет мир.",
    "def hello(name):\n    return f'Hello, {name}!'\n",
    "In the beginning the discord server was quiet; then the bot arrived.",
)


def build_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``CORPUS`` (GPT-2 style: no pad token, EOS doubles as BOS)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(CORPUS) * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS)


def build_tiny_gpt2(out_dir: Path, seed: int = 0, n_positions: int = 128) -> Path:
    """Save a random 2-layer GPT-2 and its tokenizer under ``out_dir``; return ``out_dir``."""
    tokenizer = build_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        # The default 0.02 gives near-flat logits (greedy repeats one token); 0.4 gives varied text.
        initializer_range=0.4,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
