"""The paper's per-task-family settings for mteb tasks, the hub suites, and importing mteb safely.

The settings follow the DiffEmbed recipe (Zhang et al., arXiv 2505.15045): queries get the family's
instruction, documents none; 4096 tokens per pass (304 query / 196 document tokens for FollowIR), capped by
what the model itself allows.

The hub suites (``longembed``, ``bright``, ``followir``, ``mteb-eng-retrieval``) download their data from the
Hugging Face hub. :func:`require_hub` checks first, so an offline machine gets one line instead of a hang.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from diffemb.extras import require

MTEB_REQUIREMENT = "mteb==2.26.24"

LONGEMBED_INSTRUCTION = "Retrieve text based on user query:"
FOLLOWIR_INSTRUCTION = "Retrieve text based on user query:"
BRIGHT_INSTRUCTION = (
    "Given this reasoning-intensive query, find relevant documents that could help answer the question:"
)
# The E5-Mistral per-task query instructions (Wang et al. 2024, arXiv 2401.00368), which the paper uses for
# MTEB; tasks not listed fall back to the task's own mteb prompt, then to the LongEmbed instruction.
E5_INSTRUCTIONS: dict[str, str] = {
    "ArguAna": "Given a claim, find documents that refute the claim",
    "ClimateFEVER": "Given a claim about climate change, retrieve documents that support or refute the claim",
    "CQADupstackRetrieval": "Given a question, retrieve detailed question descriptions from Stackexchange that "
    "are duplicates to the given question",
    "DBPedia": "Given a query, retrieve relevant entity descriptions from DBPedia",
    "FEVER": "Given a claim, retrieve documents that support or refute the claim",
    "FiQA2018": "Given a financial question, retrieve user replies that best answer the question",
    "HotpotQA": "Given a multi-hop question, retrieve documents that can help answer the question",
    "MSMARCO": "Given a web search query, retrieve relevant passages that answer the query",
    "NFCorpus": "Given a question, retrieve relevant documents that best answer the question",
    "NQ": "Given a question, retrieve Wikipedia passages that answer the question",
    "QuoraRetrieval": "Given a question, retrieve questions that are semantically equivalent to the given question",
    "SCIDOCS": "Given a scientific paper title, retrieve paper abstracts that are cited by the given paper",
    "SciFact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "Touche2020": "Given a question, retrieve detailed and persuasive arguments that answer the question",
    "TRECCOVID": "Given a query on COVID-19, retrieve documents that answer the query",
}

SUITES: dict[str, tuple[str, ...]] = {
    "longembed": (
        "LEMBNarrativeQARetrieval",
        "LEMBQMSumRetrieval",
        "LEMBWikimQARetrieval",
        "LEMBSummScreenFDRetrieval",
        "LEMBPasskeyRetrieval",
        "LEMBNeedleRetrieval",
    ),
    # The reasoning domains (math and code, what ReasonAug trains for) under mteb 2's names.
    "bright": (
        "BrightTheoremQAQuestionsRetrieval",
        "BrightTheoremQATheoremsRetrieval",
        "BrightAopsRetrieval",
        "BrightLeetcodeRetrieval",
    ),
    "bright-all": (
        "BrightBiologyRetrieval",
        "BrightEarthScienceRetrieval",
        "BrightEconomicsRetrieval",
        "BrightPsychologyRetrieval",
        "BrightRoboticsRetrieval",
        "BrightStackoverflowRetrieval",
        "BrightSustainableLivingRetrieval",
        "BrightLeetcodeRetrieval",
        "BrightPonyRetrieval",
        "BrightAopsRetrieval",
        "BrightTheoremQAQuestionsRetrieval",
        "BrightTheoremQATheoremsRetrieval",
    ),
    "followir": ("Core17InstructionRetrieval", "Robust04InstructionRetrieval", "News21InstructionRetrieval"),
    "mteb-eng-retrieval": tuple(E5_INSTRUCTIONS),
}


@dataclass(frozen=True)
class FamilySettings:
    """The paper's settings for one task family."""

    family: str
    query_instruction: str | None  # None: per task (E5 table / task prompt)
    query_max_length: int
    document_max_length: int


FAMILIES: dict[str, FamilySettings] = {
    "longembed": FamilySettings("longembed", LONGEMBED_INSTRUCTION, 4096, 4096),
    "bright": FamilySettings("bright", BRIGHT_INSTRUCTION, 4096, 4096),
    "followir": FamilySettings("followir", FOLLOWIR_INSTRUCTION, 304, 196),
    "mteb": FamilySettings("mteb", None, 4096, 4096),
}


def family_of(task_name: str) -> FamilySettings:
    if task_name.startswith("LEMB"):
        return FAMILIES["longembed"]
    if task_name.startswith("Bright"):
        return FAMILIES["bright"]
    if task_name.endswith("InstructionRetrieval"):
        return FAMILIES["followir"]
    return FAMILIES["mteb"]


def query_instruction(task_name: str, task_prompt: Any = None) -> str:
    """The query instruction the paper's recipe gives a task (for the model families the paper covers)."""
    settings = family_of(task_name)
    if settings.query_instruction is not None:
        return settings.query_instruction
    if task_name in E5_INSTRUCTIONS:
        return E5_INSTRUCTIONS[task_name]
    if task_name.startswith("CQADupstack"):
        return E5_INSTRUCTIONS["CQADupstackRetrieval"]
    if isinstance(task_prompt, dict) and task_prompt.get("query"):
        return str(task_prompt["query"])
    if isinstance(task_prompt, str) and task_prompt:
        return task_prompt
    return LONGEMBED_INSTRUCTION


PAPER_FAMILIES: tuple[str, ...] = ("dream", "llada", "decoder")
"""Model families whose instruction policy is the paper's task table (diffusion LMs and the AR baselines)."""


def model_query_instruction(encoder: Any, task_name: str, task_prompt: Any = None) -> str:
    """The query instruction a task gets under the model's own policy ("" for none).

    A profile without a query instruction (a plain encoder, a sentence-transformers folder without prompts, an
    adapter trained without one) gets none; a view whose query instruction was set by the user keeps it; a
    family the paper covers (Dream, LLaDA, decoders) gets the paper's instruction for the task; any other
    family its profile's own instruction (e.g. a sentence-transformers "query: " prompt).
    """
    own = encoder.profile.query_instruction or ""
    if not own:
        return ""
    if own != (encoder.loaded_profile.query_instruction or ""):
        return str(own)
    if encoder.profile.family in PAPER_FAMILIES:
        return query_instruction(task_name, task_prompt)
    return str(own)


def expand_hub_tasks(names: Sequence[str]) -> list[str]:
    """Suite names replaced by their mteb task names, in order, without repeats."""
    out: list[str] = []
    for name in names:
        for task in SUITES.get(name, (name,)):
            if task not in out:
                out.append(task)
    return out


# -- the hub ---------------------------------------------------------------------------------------------------


class HubUnavailable(RuntimeError):
    """A hub-backed task was asked for where the Hugging Face hub cannot be reached."""


def _offline_flag() -> str | None:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """(reachable, why not): the offline switches, then one TCP connection to the hub, given ``timeout`` s
    in all (the name lookup included, so a dead resolver cannot hang the caller)."""
    flag = _offline_flag()
    if flag:
        return False, f"{flag} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    hostname, _, port = host.partition(":")
    outcome: list[str] = []

    def probe() -> None:
        try:
            with socket.create_connection((hostname, int(port or 443)), timeout=timeout):
                outcome.append("")
        except OSError as err:
            outcome.append(f"{hostname} is not reachable ({type(err).__name__}: {err})")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return False, f"{hostname} did not answer within {timeout:g} s"
    return outcome[0] == "", outcome[0]


def require_hub(tasks: Sequence[str], timeout: float = 3.0) -> None:
    ok, why = hub_reachable(timeout)
    if not ok:
        shown = ", ".join(tasks[:3]) + (f" and {len(tasks) - 3} more" if len(tasks) > 3 else "")
        raise HubUnavailable(
            f"{shown} need(s) data from the Hugging Face hub, which is unavailable here: {why}; "
            "run them where the hub is reachable, or use the offline tasks (local-passkey, local-needle, "
            "local-pydocs, local-manpages)"
        )


def import_mteb_auto() -> Any:
    """mteb, with the hub switched off first unless the hub answers (one probe per process)."""
    if "mteb" in sys.modules:
        return sys.modules["mteb"]
    return import_mteb(offline=not hub_reachable(2.0)[0])


def import_mteb(offline: bool = True) -> Any:
    """mteb, imported with the hub switched off when ``offline`` (so nothing in it waits on the network)."""
    if offline:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.setdefault(name, "1")
    return require("mteb", "eval", f"the mteb integration (tested with {MTEB_REQUIREMENT})")
