"""Per-family defaults: how a checkpoint family is spelled, attended and pooled.

A profile is plain data. The backbone loaders pick one from the checkpoint's config, and the user can override
any field through `DiffEmbedEncoder.from_pretrained` (which calls `dataclasses.replace`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Attention = Literal["bidirectional", "causal"]
Pooling = Literal["mean", "last", "cls"]

# Instructions the DiffEmbed paper used (arXiv 2505.15045, section 4 and its code release).
RETRIEVAL_INSTRUCTION = "Retrieve text based on user query:"
REASONING_INSTRUCTION = (
    "Given this reasoning-intensive query, find relevant documents that could help answer the question:"
)
# The conventional instruction of e5-mistral-style AR embedders (Wang et al., arXiv 2401.00368).
WEB_SEARCH_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


@dataclass(frozen=True)
class TextTemplate:
    """How one text becomes one model input: `prefix + instruction + text + suffix`.

    `prefix` and `suffix` may hold special tokens as text (`<|im_start|>`); the tokenizer maps them to their ids.
    The tokenizer's own specials (BERT's [CLS]/[SEP], LLaMA's BOS) are added around the whole row when
    `tokenizer_specials` is true, exactly where the tokenizer itself would put them.
    """

    prefix: str = ""
    suffix: str = ""
    instruction_format: str = "{instruction} "
    """Spelling of an instruction before the text; trailing white space is glued to the text when tokenising,
    so that a BPE tokenizer sees " word" as it would in the unsplit string."""
    colon_instruction: bool = False
    """Dream's convention: an instruction's trailing "." becomes ":"."""
    tokenizer_specials: bool = True
    append_eos: bool = False
    """Close every row with the tokenizer's EOS (last-token pooling reads that state, as e5-mistral does)."""
    strip_trailing_whitespace: bool = False
    """Drop white space at the end of each text before tokenising, so "text\n" and "text" give one row. The
    DiffEmbed reference does this for the chat templates it knows (`text.strip()` over instruction + separator +
    text in its llm2vec fork; the separator sits before the text, so only the text's end is affected). Character
    spans stay those of the original text."""

    def spell_instruction(self, instruction: str | None) -> str:
        """The instruction as it appears in the row, or "" when there is none."""
        if not instruction or not instruction.strip():
            return ""
        text = instruction.strip()
        if self.colon_instruction and text.endswith("."):
            text = text[:-1] + ":"
        # The format is data, not a str.format template: only "{instruction}" is substituted, so a saved
        # `diffemb.json` cannot reach attributes through format fields.
        return self.instruction_format.replace("{instruction}", text)


PLAIN_TEMPLATE = TextTemplate()


@dataclass(frozen=True)
class ModelProfile:
    """Defaults of one checkpoint family; every field can be overridden per encoder."""

    family: str
    attention: Attention
    pooling: Pooling
    template: TextTemplate
    query_instruction: str | None
    document_instruction: str | None
    max_length: int
    normalize: bool = True
    exclude_instruction: bool = False
    """Pool over the text (and template tail) only, leaving the instruction's tokens out of the mean."""

    def with_overrides(self, **overrides: object) -> ModelProfile:
        """A copy with the given fields replaced; `None` values mean "keep the default"."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return replace(self, **given)  # type: ignore[arg-type]


# The DiffEmbed reference's Dream framing (its llm2vec fork, `prepare_for_tokenization`), stripping included.
# LLaDA and the decoder profiles below do not use a reference chat template (the fork strips only inside the
# templates of the checkpoints it names), so they keep each text as given.
DREAM_TEMPLATE = TextTemplate(
    prefix="<|im_start|>user\n",
    suffix="<|im_end|>",
    instruction_format="{instruction} ",
    colon_instruction=True,
    tokenizer_specials=False,
    strip_trailing_whitespace=True,
)

DREAM = ModelProfile(
    family="dream",
    attention="bidirectional",
    pooling="mean",
    template=DREAM_TEMPLATE,
    query_instruction=RETRIEVAL_INSTRUCTION,
    document_instruction=None,
    max_length=4096,
)

# LLaDA was not part of the paper's embedding study: no chat template by default, the same instruction.
LLADA = ModelProfile(
    family="llada",
    attention="bidirectional",
    pooling="mean",
    template=TextTemplate(tokenizer_specials=True),
    query_instruction=RETRIEVAL_INSTRUCTION,
    document_instruction=None,
    max_length=4096,
)

# The usual AR embedder (e5-mistral): causal attention, EOS appended, last-token pooling.
DECODER_CAUSAL = ModelProfile(
    family="decoder",
    attention="causal",
    pooling="last",
    template=TextTemplate(instruction_format="Instruct: {instruction}\nQuery: ", append_eos=True),
    query_instruction=WEB_SEARCH_INSTRUCTION,
    document_instruction=None,
    max_length=4096,
)

# The paper's AR baseline (LLM2Vec-style): the same decoder with the causal mask removed, mean pooling.
DECODER_BIDIRECTIONAL = ModelProfile(
    family="decoder",
    attention="bidirectional",
    pooling="mean",
    template=TextTemplate(instruction_format="{instruction} "),
    query_instruction=RETRIEVAL_INSTRUCTION,
    document_instruction=None,
    max_length=4096,
)

ENCODER = ModelProfile(
    family="encoder",
    attention="bidirectional",
    pooling="mean",
    template=PLAIN_TEMPLATE,
    query_instruction=None,
    document_instruction=None,
    max_length=512,
)
