"""The wheel and sdist that `python -m build` makes install on a fresh venv and carry what users expect.

The build runs on a copy of the source tree (nothing is written into the checkout) without build isolation (the
test venv's setuptools; no network). The wheel is installed with pip, `--no-deps`, into a fresh venv that sees
the test venv's third-party packages through a `.pth` line, so every import below comes from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGES = ("diffemb", "langchain_diffemb", "llamaindex_diffemb")
# The module each extra exists for (imported from the wheel). Extras that only bring tools or assets map to None.
EXTRA_MODULES: dict[str, str | None] = {
    "langchain": "langchain_diffemb",
    "llamaindex": "llamaindex_diffemb",
    "train": "diffemb.training",
    "eval": "diffemb.evaluation",
    "ray": "diffemb.ray",
    "cli": "diffemb.cli",
    "serve": "diffemb.serve.app",
    "serve-ray": "diffemb.serve.ray_serve",
    "vectordb": "langchain_diffemb.window_stores",
    "quant": "diffemb.quantization",
    "notebooks": None,  # Jupyter tooling for examples/*.ipynb
    "assets": None,  # the offline MiniLM folder, used through diffemb.testing.offline_assets
    "slow": None,  # GGUF packages for the slow tests
    "test": None,  # test and lint tools
}
SOURCES = ("pyproject.toml", "README.md", "LICENSE", *PACKAGES)  # what the build reads (no MANIFEST.in, no setup.py)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME")}


def wheel_of(dist: Path) -> Path:
    (wheel,) = dist.glob("diffemb-*.whl")
    return wheel


@pytest.fixture(scope="module")
def install_from_wheel(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel pip-installed (--no-deps); third-party packages come from the test venv."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    fresh_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # Appended after the fresh venv's own site-packages, and without running the test venv's .pth files, so the
    # editable install of the checkout is invisible there.
    (Path(fresh_site) / "test-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index"]
    done = subprocess.run([*install, str(wheel_of(dist))], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return venv


def test_wheel_and_sdist_are_built_with_the_version_of_pyproject(dist: Path) -> None:
    version = PYPROJECT["project"]["version"]
    assert wheel_of(dist).name == f"diffemb-{version}-py3-none-any.whl"
    assert (dist / f"diffemb-{version}.tar.gz").is_file()


def test_wheel_carries_license_type_markers_and_metadata(dist: Path) -> None:
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        names = set(wheel.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = wheel.read(metadata_name).decode()
        license_names = [n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n]
        assert license_names, "LICENSE is not in the wheel"
        assert "Apache License" in wheel.read(license_names[0]).decode()
    for package in PACKAGES:
        assert f"{package}/py.typed" in names, f"{package}/py.typed is not in the wheel"
    assert "License-Expression: Apache-2.0" in metadata
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    assert {line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Provides-Extra: ")} == extras
    assert (
        "Classifier: Typing :: Typed" in metadata and "Project-URL: Paper, https://arxiv.org/abs/2505.15045" in metadata
    )
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))]


def test_sdist_carries_what_builds_the_wheel(dist: Path) -> None:
    (sdist,) = dist.glob("diffemb-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml"} <= names
    assert {f"{package}/py.typed" for package in PACKAGES} <= names


def test_every_extra_has_its_module_and_a_readme_row() -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    assert extras <= set(EXTRA_MODULES), f"tell EXTRA_MODULES what {sorted(extras - set(EXTRA_MODULES))} are for"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [extra for extra in extras if f"| `{extra}` |" not in readme]
    assert not missing, f"README's extras table lacks {missing}"


def test_each_extras_module_imports_from_the_installed_wheel(install_from_wheel: Path) -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    modules = ["diffemb", *sorted({m for e, m in EXTRA_MODULES.items() if m and e in extras})]
    script = textwrap.dedent(
        """
        import importlib, importlib.metadata, importlib.resources, json, sys
        found = {}
        for name in sys.argv[1:]:
            found[name] = importlib.import_module(name).__file__
        import diffemb
        print(json.dumps({
            "files": found,
            "version": diffemb.__version__,
            "metadata_version": importlib.metadata.version("diffemb"),
            "typed": [importlib.resources.files(p).joinpath("py.typed").is_file() for p in ("diffemb", *found)
                      if "." not in p],
        }))
        """
    )
    python = install_from_wheel / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", script, *modules], cwd=install_from_wheel, env=clean_env(), capture_output=True, text=True
    )  # not from the checkout: `python -c` puts the working folder first on sys.path
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    outside = {name: file for name, file in report["files"].items() if not file.startswith(str(install_from_wheel))}
    assert not outside, f"imported from outside the installed wheel: {outside}"
    assert report["version"] == report["metadata_version"] == PYPROJECT["project"]["version"]
    assert all(report["typed"])


def test_console_script_of_the_wheel_runs(install_from_wheel: Path) -> None:
    command = [str(install_from_wheel / "bin" / "diffemb"), "--version"]
    done = subprocess.run(command, cwd=install_from_wheel, env=clean_env(), capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"diffemb {PYPROJECT['project']['version']}"
