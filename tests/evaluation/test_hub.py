"""Hub suites: the paper's per-family settings, and failing fast (one clear error, no hang) without the hub.

None of this imports mteb: the hub is checked before mteb or any model is loaded.
"""

from __future__ import annotations

import socket
import time

import pytest

from diffemb.evaluation import mteb_adapter


def test_family_settings_follow_the_paper() -> None:
    assert mteb_adapter.family_of("LEMBPasskeyRetrieval").query_max_length == 4096
    followir = mteb_adapter.family_of("Core17InstructionRetrieval")
    assert (followir.query_max_length, followir.document_max_length) == (304, 196)
    assert mteb_adapter.query_instruction("LEMBQMSumRetrieval") == "Retrieve text based on user query:"
    assert mteb_adapter.query_instruction("News21InstructionRetrieval") == "Retrieve text based on user query:"
    assert mteb_adapter.query_instruction("BrightLeetcodeRetrieval").startswith("Given this reasoning-intensive")
    assert mteb_adapter.query_instruction("SciFact") == mteb_adapter.E5_INSTRUCTIONS["SciFact"]
    assert mteb_adapter.query_instruction("CQADupstackGisRetrieval").startswith("Given a question, retrieve detailed")
    assert mteb_adapter.query_instruction("SomeNewTask", {"query": "Find it"}) == "Find it"
    expanded = mteb_adapter.expand_hub_tasks(["longembed", "LEMBPasskeyRetrieval", "followir"])
    assert expanded[:6] == list(mteb_adapter.SUITES["longembed"]) and len(expanded) == 9


def test_offline_switch_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(mteb_adapter.HubUnavailable, match="HF_HUB_OFFLINE is set") as caught:
        mteb_adapter.load_hub_tasks(["bright"])
    message = str(caught.value)
    assert "\n" not in message and "BrightTheoremQAQuestionsRetrieval" in message and "local-passkey" in message


def test_a_silent_network_cannot_hang_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)

    def black_hole(*args: object, **kwargs: object) -> socket.socket:
        time.sleep(30)
        raise OSError("unreachable")

    monkeypatch.setattr(socket, "create_connection", black_hole)
    started = time.perf_counter()
    with pytest.raises(mteb_adapter.HubUnavailable, match=r"did not answer within 0\.5 s"):
        mteb_adapter.require_hub(["LEMBNeedleRetrieval"], timeout=0.5)
    assert time.perf_counter() - started < 5
