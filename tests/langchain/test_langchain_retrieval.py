"""End to end with the real all-MiniLM-L6-v2: an `InMemoryVectorStore` finds the right document for paraphrases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.vectorstores import InMemoryVectorStore

from diffemb import DiffEmbedEncoder
from langchain_diffemb import DiffEmbedEmbeddings

SENTENCES = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "Regular aerobic exercise lowers blood pressure and improves heart health.",
    "The Great Barrier Reef off Australia is the largest coral reef system on Earth.",
    "Python lists can grow and shrink, while tuples cannot be changed after creation.",
    "A sourdough starter is a fermented mix of flour and water full of wild yeast.",
    "The Federal Reserve raises interest rates to slow down inflation.",
    "Mount Everest is the highest mountain above sea level, at about 8,849 metres.",
    "Honeybees communicate the location of flowers through a waggle dance.",
    "Vincent van Gogh painted The Starry Night while staying at an asylum in Saint-Rémy.",
    "Black holes form when massive stars collapse under their own gravity.",
    "The violin has four strings tuned in perfect fifths.",
    "Antibiotics kill bacteria but have no effect on viral infections such as the flu.",
    "In chess, castling moves the king two squares toward a rook in a single turn.",
    "The Amazon rainforest produces a large share of the world's oxygen and hosts countless species.",
    "Electric cars use lithium-ion batteries that are recharged from the grid.",
    "Shakespeare wrote Hamlet, a tragedy about a Danish prince seeking revenge.",
    "Drinking enough water helps the kidneys filter waste from the blood.",
    "The Roman Empire was divided into eastern and western halves in the late fourth century.",
    "Cats spend most of the day sleeping, often twelve to sixteen hours.",
    "A solar eclipse happens when the Moon passes between the Sun and the Earth.",
    "Git branches let developers work on features without touching the main code line.",
    "Coffee beans are the roasted seeds of the berries of the Coffea plant.",
    "Marathon runners often eat extra carbohydrates in the days before a race.",
    "The Pacific is the largest and deepest of the world's oceans.",
    "Vaccines train the immune system to recognise a pathogen before an infection.",
    "Bitcoin transactions are recorded on a public ledger called the blockchain.",
    "Tomatoes grow best in warm weather with plenty of direct sunlight.",
    "The Beatles were a rock band formed in Liverpool in 1960.",
    "Earthquakes are caused by the sudden movement of tectonic plates along faults.",
]

QUERIES = {
    "When was the famous iron tower in France finished?": 0,
    "How do green plants make food from light?": 1,
    "Which coral formation near Australia is the biggest in the world?": 3,
    "What is the difference between mutable and immutable sequences in Python?": 4,
    "Why does the central bank increase the cost of borrowing?": 6,
    "What is the tallest peak on the planet?": 7,
    "How do bees tell each other where food is?": 8,
    "Who created the painting of a swirling night sky?": 9,
    "Do antibiotics help against a cold virus?": 12,
    "How long do house cats nap each day?": 19,
    "What happens when the moon blocks the sun?": 20,
    "What makes the ground shake during a quake?": 29,
}


@pytest.fixture(scope="module")
def store(minilm_encoder: DiffEmbedEncoder) -> InMemoryVectorStore:
    return InMemoryVectorStore.from_texts(SENTENCES, embedding=DiffEmbedEmbeddings(encoder=minilm_encoder))


@pytest.mark.parametrize(("query", "expected"), QUERIES.items())
def test_paraphrased_query_finds_its_document(store: InMemoryVectorStore, query: str, expected: int) -> None:
    assert store.similarity_search(query, k=1)[0].page_content == SENTENCES[expected]


async def test_retriever_sync_and_async(store: InMemoryVectorStore) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 1})
    for query in ("What is the tallest peak on the planet?", "How long do house cats nap each day?"):
        assert retriever.invoke(query)[0].page_content == SENTENCES[QUERIES[query]]
    query = "How do bees tell each other where food is?"
    assert (await retriever.ainvoke(query))[0].page_content == SENTENCES[QUERIES[query]]
    top3 = store.as_retriever(search_kwargs={"k": 3}).invoke("Which coral formation near Australia is the biggest?")
    assert len(top3) == 3 and top3[0].page_content == SENTENCES[3]


def test_loaded_by_folder_matches_the_encoder(minilm_folder: Path, minilm_encoder: DiffEmbedEncoder) -> None:
    embeddings = DiffEmbedEmbeddings(model_name=str(minilm_folder), device="cpu")
    query = "What is the tallest peak on the planet?"
    np.testing.assert_allclose(embeddings.embed_query(query), minilm_encoder.encode_queries([query])[0], atol=1e-5)
