"""The tiny tokenizers of the test checkpoints, trained on a fixed corpus so that vocabularies never move.

Byte-level BPE as Qwen2/Dream/LLaDA/Llama publish it (special tokens appended after the BPE vocabulary) and a
lowercasing WordPiece vocabulary for BERT-family encoders.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers.trainers import BpeTrainer

DREAM_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|beginoftext|>", "<|mask|>"]


LLADA_SPECIAL_TOKENS = ["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>", "<|start_header_id|>",
                        "<|end_header_id|>", "<|eot_id|>"]  # fmt: skip


QWEN2_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


LLAMA_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eot_id|>"]  # fmt: skip


# transformers' Qwen2Tokenizer splits with this regex; training with it keeps merges consistent with loading.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


_SUBJECTS = ["the cat", "a young doctor", "my neighbour", "the old farmer", "our teacher", "Anna", "the quick fox",
             "a tired student", "the city council", "her brother", "the robot", "Professor Müller", "the children",
             "a famous painter", "the engineer", "Tom"]  # fmt: skip


_VERBS = ["reads", "builds", "paints", "finds", "carries", "describes", "watches", "repairs", "sells", "remembers",
          "forgets", "explains", "measures", "visits", "cooks", "writes"]  # fmt: skip


_OBJECTS = ["a red book", "the long river", "three green apples", "an empty bottle", "the report", "a small boat",
            "the broken window", "the ancient map", "two letters", "the recipe", "a blue bicycle", "the theorem",
            "a café menu", "the naïve plan", "a résumé"]  # fmt: skip


_PLACES = ["in the garden", "near the station", "at the museum", "under the bridge", "in Zürich", "on the mountain",
           "by the sea", "inside the library", "at home", "in the kitchen"]  # fmt: skip


_TIMES = ["every morning", "last winter", "before dinner", "after the storm", "on Sunday", "in 1999",
          "at 7 o'clock", "twice a week", "yesterday", "during the summer"]  # fmt: skip


_FIXED = [
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.",
    "Retrieve text based on user query: what is the capital of France?",
    "Given a question, retrieve passages that answer the question.",
    "Alice's pass key is 68142. Remember it. What is Alice's pass key?",
    "user\nassistant\nsystem\nquery: passage: document: instruction:",
    "Numbers like 3.14, 2,718 and -42 appear in tables; e-mail me at bob@example.com!",
]


def corpus(n: int = 400) -> list[str]:
    """A fixed small English corpus, independent of any checkpoint seed so vocabularies never move."""
    rng = random.Random(1234)
    lines = list(_FIXED)
    while len(lines) < n:
        s, v, o = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
        p, t = rng.choice(_PLACES), rng.choice(_TIMES)
        lines.append(
            [
                f"{s.capitalize()} {v} {o} {p} {t}.",
                f"Why does {s} say that {o} is {p}?",
                f"{t.capitalize()}, {s} {v} {o}; then {rng.choice(_SUBJECTS)} {v} it too.",
                f'"{o.capitalize()}," said {s}, "is {p}!"',
            ][rng.randrange(4)]
        )
    return lines


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")


def byte_level_bpe(vocab: dict[str, int] | None = None, merges: list[tuple[str, str]] | None = None) -> Tokenizer:
    """Qwen2's pipeline: NFC, regex split, byte-level mapping without prefix space."""
    tok = Tokenizer(models.BPE() if vocab is None else models.BPE(vocab=vocab, merges=merges))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def build_bpe_tokenizer_files(path: str | Path, special_tokens: list[str], *, vocab_size: int = 600) -> dict[str, int]:
    """Train a byte-level BPE on :func:`corpus` and write ``vocab.json`` + ``merges.txt``.

    As in Qwen2's published files, the special tokens are not in ``vocab.json``: they take the ids right after
    the BPE vocabulary, which are returned so callers can record them in ``added_tokens_decoder``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = byte_level_bpe()
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # every byte stays encodable, so nothing is ever unknown
    trainer = BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False, initial_alphabet=alphabet)
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.model.save(str(path))
    n = tok.get_vocab_size()
    return {t: n + i for i, t in enumerate(special_tokens)}


def bpe_tokenizer_object(special_tokens: list[str]) -> tuple[Tokenizer, dict[str, int]]:
    """The BPE of :func:`build_bpe_tokenizer_files` as one ``tokenizers`` object, specials appended."""
    with tempfile.TemporaryDirectory() as tmp:
        ids = build_bpe_tokenizer_files(tmp, special_tokens)
        vocab = json.loads((Path(tmp) / "vocab.json").read_text("utf-8"))
        lines = (Path(tmp) / "merges.txt").read_text("utf-8").splitlines()
    merges = [(a, b) for a, b in (line.split(" ") for line in lines if line and not line.startswith("#version"))]
    tok = byte_level_bpe(vocab, merges)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens])
    return tok, ids


def added_tokens_decoder(ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    flags = {"lstrip": False, "rstrip": False, "normalized": False, "single_word": False, "special": True}
    return {str(i): {"content": t, **flags} for t, i in ids.items()}


def padded_vocab(ids: dict[str, int], multiple: int = 64) -> int:
    # Published embeddings have more rows than the tokenizer has ids (Dream: 152064 vs 151667); mimic that.
    return -(-(max(ids.values()) + 1) // multiple) * multiple


def wordpiece_vocab() -> list[str]:
    """Specials, every corpus word, and every character alone and as a ``##`` piece, so nothing is [UNK]."""
    norm, split = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = sorted({w for line in corpus() for w, _ in split.pre_tokenize_str(norm.normalize_str(line))})
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789"))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return list(dict.fromkeys(specials + chars + words + [f"##{c}" for c in chars]))
