"""Every code block of README.md works as written, offline, for a user who pastes it at the repository root.

Blocks are found afresh on every run (a new section is tested without touching this file). What the test
changes, and only that, so a block can run on a laptop CPU without the hub:

* **Models, inputs, limits**: the substitution rules in `tests/readme_blocks.py`.
* **How commands run.** `diffemb ...` runs through `diffemb.cli.main` (the console script's entry point) in this
  process; `bash scripts/quickstart.sh` runs for real in a copy of the scripts whose `setup.sh` is a no-op (this
  venv is already set up); `pip install` and `python -m build` are checked here against pyproject.toml and run
  by tests/test_packaging.py; `bash scripts/test.sh` is the command that runs this very test.
* **Servers.** `diffemb serve ...` starts in the background and is stopped when its block ends; a block that
  talks to `http://localhost:PORT` without starting a server itself gets the README's last `diffemb serve`
  command before it (or a plain one on MiniLM) on that port for its duration. `curl` runs as written.
* **Ray.** Blocks that use Ray (`--ray`, `ray start`, `import ray`) run under the `slow` marker: a Ray start
  takes 20-100 s on two CPU cores.

Python blocks run each in a fresh namespace, one after the other, in one fresh interpreter (a block that uses a
name it did not define fails). A block opts out only with a visible marker and a reason on the line before it,
`<!-- readme-test: skip (reason) -->`, and then shows as a skipped test with that reason.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import tomllib
from readme_blocks import (
    ROOT,
    Block,
    commands_of,
    fill_work_folder,
    hub_suites,
    minilm,
    offline_argv,
    offline_python,
    readme_blocks,
)

README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent

HUB_OFFLINE_ERROR = "data from the Hugging Face hub"


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def params(language: str) -> list[object]:
    chosen = [b for b in BLOCKS if b.language == language]
    return [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.uses_ray else []) for b in chosen]


# -- the work folder ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`my-adapter`: what the README's `diffemb train` writes, made on MiniLM in one step."""
    from diffemb.cli import main

    work = fill_work_folder(tmp_path_factory.mktemp("adapter"), None)
    argv = ["train", "--model", minilm(), "--data", str(work / "data.jsonl"), "--output", str(work / "my-adapter")]
    assert main([*argv, "--max-steps", "1", "--batch-size", "4", "--no-progress"]) == 0
    return work / "my-adapter"


def work_folder(tmp_path: Path, trained_adapter: Path, block: Block) -> Path:
    writes_adapter = re.search(r"--output\s+my-adapter\b", block.source) is not None
    return fill_work_folder(tmp_path / "work", None if writes_adapter else trained_adapter)


# -- Python blocks ------------------------------------------------------------------------------------------------


RUNNER = textwrap.dedent(
    """
    import json, sys, traceback
    results = []
    for source in json.load(open(sys.argv[1], encoding="utf-8")):
        try:
            exec(compile(source, "<README block>", "exec"), {"__name__": "__main__"})
            results.append(None)
        except BaseException:
            results.append(traceback.format_exc())
    json.dump(results, open(sys.argv[2], "w", encoding="utf-8"))
    """
)


def run_python_blocks(blocks: list[Block], work: Path) -> dict[Block, str | None]:
    """Run the blocks one after another in one fresh interpreter, each in a namespace of its own."""
    sources, results = work / ".blocks.json", work / ".results.json"
    sources.write_text(json.dumps([offline_python(b, work) for b in blocks]), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(sources), str(results)],
        cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert results.is_file(), f"the block runner died:\n{done.stderr[-4000:]}"
    return dict(zip(blocks, json.loads(results.read_text(encoding="utf-8")), strict=True))


@pytest.fixture(scope="module")
def python_results(tmp_path_factory: pytest.TempPathFactory, trained_adapter: Path) -> dict[Block, str | None]:
    """The Python blocks without Ray, run once for the module: one interpreter for the blocks that need no server,
    one per server they talk to (started once for all of them)."""
    work = fill_work_folder(tmp_path_factory.mktemp("python-blocks"), trained_adapter)
    groups: dict[tuple[str, ...], list[Block]] = {}
    for block in BLOCKS:
        if block.language == "python" and not (block.uses_ray or block.skip_reason):
            groups.setdefault(server_for(block, work), []).append(block)
    results: dict[Block, str | None] = {}
    for argv, blocks in groups.items():
        with served(argv, work):
            results.update(run_python_blocks(blocks, work))
    return results


@pytest.mark.parametrize("block", params("python"))
def test_python_block_runs(block: Block, request: pytest.FixtureRequest, tmp_path: Path, trained_adapter: Path) -> None:
    if block.skip_reason:
        pytest.skip(f"README line {block.line}: {block.skip_reason}")
    if block.uses_ray:
        work = work_folder(tmp_path, trained_adapter, block)
        with served(server_for(block, work), work):
            error = run_python_blocks([block], work)[block]
    else:
        error = request.getfixturevalue("python_results")[block]
    assert error is None, f"README line {block.line} ({block.section}) failed as written:\n{error}"


# -- shell commands -------------------------------------------------------------------------------------------


def option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


@contextmanager
def server(argv: list[str], work: Path) -> Iterator[None]:
    """`diffemb serve ...` in the background until the block ends; ready once /health answers."""
    url = f"http://{option(argv, '--host', '127.0.0.1')}:{option(argv, '--port', '8080')}/health"
    with (work / "server.log").open("w") as log:
        process = subprocess.Popen([str(VENV_BIN / "diffemb"), *argv[1:]], cwd=work, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 300
            while not healthy(url):
                assert process.poll() is None, f"the server exited: {(work / 'server.log').read_text()[-3000:]}"
                assert time.monotonic() < deadline, "the server did not answer /health within 300 s"
                time.sleep(1)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def server_for(block: Block, work: Path) -> tuple[str, ...]:
    """For a block that talks to a server it does not start: the README's last `diffemb serve` before it."""
    if block.server_port is None:
        return ()
    earlier = [
        argv for b in BLOCKS if b.language == "bash" and b.line < block.line
        for _, argv in commands_of(b) if argv[:2] == ["diffemb", "serve"]
    ]  # fmt: skip
    argv = offline_argv(earlier[-1], work) if earlier else ["diffemb", "serve", "--model", minilm()]
    return (*argv, "--port", str(block.server_port))


@contextmanager
def served(argv: tuple[str, ...], work: Path) -> Iterator[None]:
    if not argv:
        yield
        return
    with server(list(argv), work):
        yield


def run_diffemb(argv: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    if "--ray" in argv:  # own process: Ray holds global state
        done = subprocess.run([str(VENV_BIN / "diffemb"), *argv[1:]], capture_output=True, text=True, check=False)
        code, err = done.returncode, done.stderr
    else:
        from diffemb.cli import main

        code = main(argv[1:])
        err = capfd.readouterr().err
    if hub_suites(argv):
        assert code == 1 and HUB_OFFLINE_ERROR in err, f"expected the one-line offline stop, got {code}: {err}"
    else:
        assert code == 0, f"exit code {code}: {err[-3000:]}"


def run_quickstart(argv: list[str], work: Path) -> None:
    """scripts/quickstart.sh for real, with its setup step a no-op; the echoed command must be the one that ran."""
    repo = work / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "quickstart.sh", repo / "scripts" / "quickstart.sh")
    (repo / "scripts" / "setup.sh").write_text("exit 0  # the test's venv is set up already\n")
    shutil.copytree(work / "examples", repo / "examples")
    shutil.copy2(ROOT / "examples" / "quickstart.py", repo / "examples" / "quickstart.py")
    log = work / "diffemb-argv.json"
    (repo / ".venv" / "bin").mkdir(parents=True)
    wrappers = {
        "python": f'exec "{VENV_BIN / "python"}" "$@"',
        "diffemb": f"\"{VENV_BIN / 'python'}\" -c \"import json,sys; json.dump(sys.argv[1:], open('{log}', 'w'))\" "
        f'"$@"\nexec "{VENV_BIN / "diffemb"}" "$@"',
    }
    for name, body in wrappers.items():
        (repo / ".venv" / "bin" / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (repo / ".venv" / "bin" / name).chmod(0o755)
    done = subprocess.run(["bash", *argv[1:]], cwd=repo, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cosine similarity" in done.stdout and "history_of_the_bicycle" in done.stdout, done.stdout
    echoed = next(line for line in done.stdout.splitlines() if line.startswith("$ diffemb "))
    assert shlex.split(echoed[2:])[1:] == json.loads(log.read_text()), "the echoed command is not the one run"


def check_pip_install(argv: list[str], work: Path) -> None:
    """The install forms tests/test_packaging.py exercises, with extras that pyproject.toml declares."""
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    targets = [a for a in argv[2:] if not a.startswith("-")]
    assert targets, argv
    for target in targets:
        match = re.fullmatch(r"(\.|dist/diffemb-[^\[]*\.whl)(?:\[([\w,-]+)\])?", target)
        assert match, f"{target}: install from the repository ('.') or a built wheel (dist/diffemb-*.whl)"
        unknown = set((match[2] or "").split(",")) - extras - {""}
        assert not unknown, f"{target}: no such extra {sorted(unknown)} in pyproject.toml"
    assert "install_from_wheel" in (ROOT / "tests" / "test_packaging.py").read_text()


def check_build(argv: list[str], work: Path) -> None:
    assert argv == ["python", "-m", "build"]
    assert '"-m", "build"' in (ROOT / "tests" / "test_packaging.py").read_text()  # that test runs it


def check_test_script(argv: list[str], work: Path) -> None:
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert argv[1] == "scripts/test.sh" and "-m pytest" in script  # it is the command that runs this test


COMMANDS: list[tuple[Callable[[list[str]], bool], Callable[..., None]]] = [
    (lambda a: a[:2] == ["bash", "scripts/quickstart.sh"], run_quickstart),
    (lambda a: a[:2] == ["bash", "scripts/test.sh"], check_test_script),
    (lambda a: a[:2] == ["pip", "install"], check_pip_install),
    (lambda a: a[:3] == ["python", "-m", "build"], check_build),
]


@pytest.mark.parametrize("block", params("bash"))
def test_shell_block_runs(
    block: Block,
    tmp_path: Path,
    trained_adapter: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if block.skip_reason:
        pytest.skip(f"README line {block.line}: {block.skip_reason}")
    work = work_folder(tmp_path, trained_adapter, block)
    monkeypatch.chdir(work)
    with ExitStack() as running:  # servers and a Ray cluster started by the block, stopped when it ends
        running.enter_context(served(server_for(block, work), work))
        for line, argv in commands_of(block):
            argv = offline_argv(argv, work)
            try:
                assert not {"|", "&&", "||", ";", ">"} & set(argv), "one command per line, please (or teach this test)"
                if argv[:2] == ["diffemb", "serve"]:
                    running.enter_context(server(argv, work))
                elif argv[0] == "diffemb":
                    run_diffemb(argv, capfd)
                elif argv[0] == "curl":
                    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
                    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
                elif argv[:2] == ["ray", "start"]:
                    running.callback(subprocess.run, [str(VENV_BIN / "ray"), "stop", "--force"], capture_output=True)
                    subprocess.run([str(VENV_BIN / "ray"), *argv[1:], "--disable-usage-stats"], check=True)
                else:
                    runner = next((run for matches, run in COMMANDS if matches(argv)), None)
                    assert runner is not None, "no rule of tests/test_readme.py runs this command: add one"
                    runner(argv, work)
            except AssertionError as error:
                raise AssertionError(f"README line {line}: `{shlex.join(argv)}`: {error}") from None


def test_every_block_is_tested() -> None:
    languages = {b.language for b in BLOCKS}
    assert languages <= {"python", "bash"}, f"README blocks in {languages - {'python', 'bash'}}: teach this test"
    assert [b for b in BLOCKS if b.language == "python"] and [b for b in BLOCKS if b.language == "bash"]
