"""`DiffEmbedEmbedding` inside LlamaIndex: a vector index over real sentences, ingestion caching, long nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.ingestion import IngestionCache, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import MetadataMode
from llama_index.core.vector_stores import SimpleVectorStore

from diffemb import DiffEmbedEncoder
from llamaindex_diffemb import DiffEmbedEmbedding

FACTS = [
    "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
    "Honeybees communicate the location of flowers to each other with a waggle dance.",
    "Mount Everest is the highest mountain above sea level, at about 8,849 metres.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "The Great Wall of China stretches for thousands of kilometres across northern China.",
    "Penguins cannot fly, but they are excellent swimmers in cold southern oceans.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Ludwig van Beethoven kept composing music after he had gone deaf.",
    "The Amazon rainforest produces a large share of the world's river water and oxygen.",
    "A marathon race is 42.195 kilometres long.",
    "Coffee beans are the roasted seeds of the Coffea plant.",
    "The human heart pumps blood through the body with about seventy beats per minute at rest.",
    "Jupiter is the largest planet in our solar system.",
    "Chess is a strategy board game played by two players on a board of 64 squares.",
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
    "The Pacific is the largest and deepest ocean on Earth.",
    "Python is a programming language known for its readable syntax.",
    "Volcanoes erupt when molten rock from inside the Earth reaches the surface.",
    "Cats sleep for around twelve to sixteen hours a day.",
    "The Mona Lisa, painted by Leonardo da Vinci, hangs in the Louvre museum.",
    "Bicycles with gears make it easier to ride up steep hills.",
    "Antibiotics treat infections caused by bacteria but do not work against viruses.",
    "The Sahara is the largest hot desert in the world.",
    "Solar panels convert sunlight directly into electricity.",
    "Shakespeare wrote the tragedy Romeo and Juliet.",
    "Elephants are the largest living land animals.",
    "The Moon causes the tides of the oceans on Earth through its gravity.",
    "Tea originated in China and is now drunk all over the world.",
    "Snow forms when water vapour freezes into ice crystals in clouds.",
    "Football, called soccer in the United States, is played with eleven players per team.",
]
PARAPHRASES = {
    "When was the famous iron tower in France's capital finished?": 0,
    "How do bees tell their hive where the flowers are?": 1,
    "What is the tallest peak in the world?": 2,
    "How do green plants make food from light?": 3,
    "Which birds swim but are unable to fly?": 5,
    "At what temperature does water start boiling?": 6,
    "Which composer lost his hearing but kept writing music?": 7,
    "How far do runners go in a marathon?": 9,
    "What is the biggest planet orbiting the Sun?": 12,
    "How many hours a day do cats spend sleeping?": 18,
    "Where is Leonardo's famous portrait displayed?": 19,
    "Do antibiotics help against a viral infection?": 21,
    "Who is the author of Romeo and Juliet?": 24,
    "Why does the sea level rise and fall during the day?": 26,
}


@pytest.fixture
def minilm_embedder(minilm_folder: Path) -> Iterator[DiffEmbedEmbedding]:
    """The documented set-up: `Settings.embed_model = DiffEmbedEmbedding(model_name=...)`, restored afterwards."""
    saved = Settings._embed_model
    Settings.embed_model = DiffEmbedEmbedding(model_name=str(minilm_folder), device="cpu")
    yield Settings.embed_model  # type: ignore[misc]
    Settings._embed_model = saved


def test_vector_index_retrieves_paraphrased_facts(minilm_embedder: DiffEmbedEmbedding) -> None:
    index = VectorStoreIndex.from_documents([Document(text=fact) for fact in FACTS])
    retriever = index.as_retriever(similarity_top_k=1)
    for query, expected in PARAPHRASES.items():
        [hit] = retriever.retrieve(query)
        assert hit.node.get_content() == FACTS[expected], query


def test_ingestion_cache_skips_the_model_until_a_setting_changes(
    tiny_dream_encoder: DiffEmbedEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = DiffEmbedEncoder.encode

    def counting(self, texts, *args, **kwargs):  # type: ignore[no-untyped-def]
        texts = list(texts)
        calls.append(len(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(DiffEmbedEncoder, "encode", counting)
    documents = [Document(text=" ".join(FACTS[i : i + 10]), doc_id=f"doc-{i}") for i in range(0, 30, 10)]
    cache = IngestionCache()
    embedder = DiffEmbedEmbedding(encoder=tiny_dream_encoder)

    def run(embed_model: DiffEmbedEmbedding) -> list[list[float]]:
        pipeline = IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=8), embed_model], cache=cache
        )
        return [node.embedding for node in pipeline.run(documents=documents)]  # type: ignore[misc]

    first = run(embedder)
    assert len(calls) == 1 and calls[0] == len(first) > 3  # one core call for all nodes
    assert run(embedder) == first
    assert len(calls) == 1  # served from the cache
    assert run(DiffEmbedEmbedding.from_dict(embedder.to_dict())) == first
    assert len(calls) == 1  # an equivalent embedder hashes the same

    changed = DiffEmbedEmbedding.from_dict(embedder.to_dict(), text_instruction="Represent the passage:")
    second = run(changed)
    assert len(calls) == 2  # a vector-affecting field changed: the model ran again
    assert not np.allclose(second, first)


def test_long_node_is_chunk_pooled_by_the_core(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    text = " ".join(FACTS)  # far beyond the tiny encoder's 64-token window
    assert tiny_dream_encoder.count_tokens(text) > 4 * 64
    index = VectorStoreIndex.from_documents(
        [Document(text=text)],
        embed_model=DiffEmbedEmbedding(encoder=tiny_dream_encoder),
        transformations=[SentenceSplitter(chunk_size=4096, chunk_overlap=0)],
    )
    [node] = index.docstore.docs.values()
    store = cast(SimpleVectorStore, index.vector_store)
    vector = np.asarray(store.get(node.node_id), dtype=np.float32)
    content = node.get_content(metadata_mode=MetadataMode.EMBED)
    assert np.allclose(vector, tiny_dream_encoder.encode_documents([content])[0], atol=1e-5)
    first_window = tiny_dream_encoder.encode_document_chunks([content])[0].vectors[0]
    assert not np.allclose(vector, first_window, atol=1e-3)
