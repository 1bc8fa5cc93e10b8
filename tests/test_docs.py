"""The documentation builds strictly, covers the CLI, and its README example runs."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from skimgclf.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown):
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_docs_build_strictly(tmp_path):
    # Material prints a banner about MkDocs 2.0 unless told not to; it is not a warning of ours.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    # The reference is generated from the docstrings, reST roles rendered as code.
    for text in ("ImageFolderLoader", "CNNClassifier", "save_model", "write_report",
                 "dense_dropout"):
        assert text in api
    assert ":class:`" not in api and ":meth:`" not in api
    for page in ("tutorial", "pipelines", "cli", "benchmarks"):
        assert (tmp_path / "site" / page / "index.html").exists()


def test_cli_reference_lists_every_option():
    reference = (ROOT / "docs" / "cli.md").read_text()
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, parser in commands.items():
        assert f"## {name}" in reference
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in reference, f"{name} {option}"


def test_readme_keeps_the_two_commands_and_the_docs_example():
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make demo") < readme.index("make test") < readme.index("```python")
    # One example, shown in both places.
    assert python_blocks(readme)[0] == python_blocks((ROOT / "docs" / "index.md").read_text())[0]


def test_readme_example_runs(small_layout, tmp_path, monkeypatch):
    layout, *_ = small_layout
    data = tmp_path / "skimgclf-demo" / "data"
    data.parent.mkdir()
    os.symlink(layout.root, data)
    code = python_blocks((ROOT / "README.md").read_text())[0]
    assert "epochs=5" in code
    monkeypatch.chdir(tmp_path)
    printed = subprocess.run([sys.executable, "-c", code.replace("epochs=5", "epochs=1")],
                             capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0, printed.stderr
    labels = re.findall(r"\d+", printed.stdout)
    assert len(labels) == 10 and all(0 <= int(label) <= 9 for label in labels)


@pytest.mark.parametrize("text, expected", [
    (":class:`~sklearn.pipeline.Pipeline` and :func:`load`", "`Pipeline` and `load`"),
    ("a pipeline::\n\n    code", "a pipeline:\n\n    code"),
])
def test_rst_markup_becomes_markdown(text, expected):
    spec = importlib.util.spec_from_file_location("rst_markup",
                                                  ROOT / "docs" / "_ext" / "rst_markup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.rst_to_markdown(text) == expected
