"""The docs a user reads stay true: generated pages are up to date, the README stays short, and no file
names a working round (a number names its commit, CPU and command instead)."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO, load_tool

GEN_DOCS = load_tool("gen_docs")


def test_generated_pages_are_up_to_date():
    for rel, make in GEN_DOCS.PAGES.items():
        assert (REPO / rel).read_text() == make(), f"{rel} is stale: run .venv/bin/python tools/gen_docs.py"


def test_the_configuration_page_lists_every_key_of_the_schema():
    text = (REPO / "docs/configuration.md").read_text()
    schema = GEN_DOCS.load_schema()
    for key in schema["properties"]:
        assert f"### `{key}`" in text
    for key in schema["definitions"]["stage"]["properties"]:
        assert f"### `train.{key}`" in text


def test_the_readme_is_short_and_its_table_cells_too():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 230
    cells = [cell for line in lines if line.startswith("|") for cell in line.strip("|").split("|")]
    assert cells and max(len(cell) for cell in cells) <= 300


def test_no_file_names_a_working_round():
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    pattern = re.compile(r"\bsessions? ?\d+|\bsession-\d+|\bthis session\b|\bsessions \d+-\d+", re.I)
    named = []
    for rel in files:
        path = REPO / rel
        if path.suffix in (".png", ".jpg", ".npz", ".parquet", ".pth") or not path.is_file():
            continue
        named += [f"{rel}:{n}" for n, line in enumerate(path.read_text(errors="ignore").splitlines(), 1)
                  if pattern.search(line)]
    assert not named, named[:10]
