"""A hand-edited or hostile `diffemb.json` beside an adapter (issue 17, item 14).

Every field is type-checked when the adapter is loaded, before any weight is read, with the file and the field
named; the template is data (only `{instruction}` is substituted, never a `str.format` field).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from diffemb import DiffEmbedEncoder
from diffemb.adapter_settings import read_adapter_settings
from diffemb.profiles import TextTemplate

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
HOSTILE_FORMAT = "{instruction.__class__.__mro__} {0} {instruction}"

BAD_FILES = {
    "string max_length": ({"encoder": {"max_length": "12"}}, "max_length must be int, got '12'"),
    "bool max_length": ({"encoder": {"max_length": True}}, "max_length must be int, got True"),
    "zero max_length": ({"encoder": {"max_length": 0}}, "max_length must be int, got 0"),
    "infinite max_length": ('{"encoder": {"max_length": Infinity}}', "max_length must be int, got inf"),
    "evil attention": ({"encoder": {"attention": "evil"}}, r"attention must be one of \['bidirectional', 'causal'\]"),
    "list pooling": ({"encoder": {"pooling": ["mean"]}}, r"pooling must be one of"),
    "number instruction": ({"encoder": {"query_instruction": 5}}, "query_instruction must be str or NoneType"),
    "string normalize": ({"encoder": {"normalize": "yes"}}, "normalize must be bool"),
    "encoder not an object": ({"encoder": ["attention"]}, "'encoder' must be an object"),
    "file not an object": ([1, 2], "must hold a JSON object"),
    "not JSON": ("{'encoder': 1}", "is not valid JSON"),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "lone surrogate": ('{"encoder": {"query_instruction": "find \\ud800"}}', "query_instruction is not valid Unicode"),
    "template not an object": ({"encoder": {"template": "{instruction}"}}, "template must be dict"),
    "template unknown field": ({"encoder": {"template": {"evil": 1}}}, r"template has unknown fields \['evil'\]"),
    "template wrong type": ({"encoder": {"template": {"prefix": 1}}}, "template.prefix must be str"),
    "template drops the instruction": (
        {"encoder": {"template": {"instruction_format": "Query: "}}},
        r"template.instruction_format must contain \{instruction\}",
    ),
    "template surrogate": ({"encoder": {"template": {"suffix": "\udc80"}}}, "template.suffix is not valid Unicode"),
}


def _write(folder: Path, content: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (folder / "diffemb.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    return folder


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_field_is_named_before_weights_load(case: str, tmp_path: Path, tiny_dream_folder: Path) -> None:
    content, message = BAD_FILES[case]
    adapter = _write(tmp_path / "adapter", content)  # no adapter weights at all: the settings fail first
    with pytest.raises(ValueError, match=message) as error:
        read_adapter_settings(adapter)
    assert str(adapter / "diffemb.json") in str(error.value)
    with pytest.raises(ValueError, match=message):
        DiffEmbedEncoder.from_pretrained(tiny_dream_folder, adapter=adapter, device="cpu", dtype="float32")


def test_instruction_format_is_data_not_a_format_string() -> None:
    template = TextTemplate(instruction_format=HOSTILE_FORMAT)
    assert template.spell_instruction("Find it") == "{instruction.__class__.__mro__} {0} Find it"
    assert TextTemplate().spell_instruction("{0} {instruction.__init__}") == "{0} {instruction.__init__} "


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_hostile_template_in_an_adapter_stays_literal(tiny_dream_folder: Path, tmp_path: Path) -> None:
    base = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32", shared=False)
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False)
    adapter = tmp_path / "adapter"
    get_peft_model(base.model, lora).save_pretrained(str(adapter))
    del base
    _write(adapter, {"encoder": {"query_instruction": "Find it", "template": {"instruction_format": HOSTILE_FORMAT}}})
    encoder = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, adapter=adapter, device="cpu", dtype="float32")
    assert encoder.profile.template.instruction_format == HOSTILE_FORMAT
    frame = encoder.text.frame(encoder.instruction_for("query"))
    assert encoder.tokenizer.decode(list(frame.instruction)) == "{instruction.__class__.__mro__} {0} Find it"
    vectors = encoder.encode_queries(["what colour is the sky?"])
    assert vectors.shape == (1, encoder.dimension) and bool(torch.isfinite(torch.from_numpy(vectors)).all())
