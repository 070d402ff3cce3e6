"""The tutorials say what they need: the ``tutorials`` extra brings every package their
cells import, and tutorial 07's first cell names what is missing (kcat, packages)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# import name -> distribution, for what the tutorials import beside the standard library
DISTRIBUTIONS = {
    "confluent_kafka": "confluent-kafka",
    "kafka": "kafka-python",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "duckdb": "duckdb",
    "matplotlib": "matplotlib",
    "ipywidgets": "ipywidgets",
    "itables": "itables",
}


def _extra(name: str, project: dict[str, object]) -> set[str]:
    """The distributions an extra installs (following ``streamlab[...]`` to other extras)."""
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    found: set[str] = set()
    for requirement in extras[name]:
        dist = requirement.split(">")[0].split("=")[0].split("[")[0].strip()
        if dist == "streamlab":
            for inner in requirement.split("[")[1].split("]")[0].split(","):
                found |= _extra(inner.strip(), project)
        else:
            found.add(dist)
    return found


def _imports(notebook: Path) -> set[str]:
    names: set[str] = set()
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_the_tutorials_extra_installs_what_every_tutorial_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = _extra("tutorials", project) | {d.split(">")[0].strip() for d in project["dependencies"]}
    assert NOTEBOOKS
    for notebook in NOTEBOOKS:
        for name in _imports(notebook) - set(sys.stdlib_module_names) - {"streamlab"}:
            assert name in DISTRIBUTIONS, f"{notebook.name} imports {name}: add it to DISTRIBUTIONS and the extra"
            assert DISTRIBUTIONS[name] in installed, f"{notebook.name} needs {DISTRIBUTIONS[name]}"


@pytest.fixture
def needs_cell() -> str:
    cells = nbformat.read(ROOT / "notebooks" / "07_from_one_notebook_to_a_cluster.ipynb", as_version=4).cells
    code = [c.source for c in cells if c.cell_type == "code"]
    assert "tutorial 07 needs" in code[0]  # the first code cell checks, before anything uses them
    return code[0]


@pytest.mark.integration  # Python subprocesses
def test_tutorial_07_checks_its_needs_first_and_says_what_is_missing(needs_cell: str, tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-c", needs_cell], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "confluent-kafka, kafka-python and kcat are there" in ok.stdout

    # without kcat on PATH (and kafka-python hidden), the cell stops and names both fixes
    hide = (  # kafka-python installed but hidden, as if it were not
        "import importlib.util as u\n"
        "find = u.find_spec\n"
        "u.find_spec = lambda n, *a: None if n == 'kafka' else find(n, *a)\n"
    )
    missing = subprocess.run(
        [sys.executable, "-c", hide + needs_cell],
        capture_output=True, text=True, timeout=60, env={"PATH": str(tmp_path)},
    )  # fmt: skip
    assert missing.returncode != 0
    assert "tutorial 07 needs:" in missing.stderr
    assert "kcat on PATH: apt-get install kcat" in missing.stderr
    assert "kafka-python (a Kafka client written by other people): pip install 'streamlab[tutorials]'" in missing.stderr
