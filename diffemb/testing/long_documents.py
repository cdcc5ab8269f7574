"""Small long-document sets for tests and notebooks: one fact (the needle) deep inside filler, written here.

Each document is a run of plain sentences about one everyday topic; the needle document carries a sentence with
a made-up code name and number after `needle_after` filler sentences, so with short windows it lands several
windows in, where truncation and one mean vector lose it.
"""

from __future__ import annotations

TOPICS = {
    "garden": "The garden path winds past beds of {x} where bees visit the flowers every morning.",
    "harbour": "Fishing boats in the harbour unload {x} while gulls circle above the wooden pier.",
    "kitchen": "In the kitchen the cook prepares {x} and sets the table for a family dinner.",
    "library": "The old library keeps shelves of {x} that students read during the quiet afternoon.",
    "railway": "The railway station announces trains carrying {x} across the valley before noon.",
    "market": "Traders at the weekly market sell {x} from stalls under striped canvas roofs.",
}
THINGS = ("tomatoes", "fresh herbs", "wool blankets", "maps", "pottery", "apples", "timber", "cheese", "lanterns")
NEEDLE = "The secret launch code of the Zephyr project is 7431."
QUESTION = "What is the secret launch code of the Zephyr project?"


def filler(topic: str, sentences: int, shift: int = 0) -> str:
    """`sentences` sentences about `topic`, varied by the things named in them."""
    pattern = TOPICS[topic]
    return " ".join(pattern.format(x=THINGS[(i + shift) % len(THINGS)]) for i in range(sentences))


def needle_corpus(sentences: int = 30, needle_after: int = 20, needle_topic: str = "library") -> dict[str, str]:
    """Documents by id, one per topic; the `needle_topic` one holds `NEEDLE` after `needle_after` sentences."""
    documents = {}
    for shift, topic in enumerate(TOPICS):
        if topic == needle_topic:
            head, tail = filler(topic, needle_after, shift), filler(topic, sentences - needle_after, shift + 3)
            documents[topic] = f"{head} {NEEDLE} {tail}"
        else:
            documents[topic] = filler(topic, sentences, shift)
    return documents
