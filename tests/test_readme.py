"""The README's examples run as written, and CI runs the README's test command."""

import re

import pytest

from helpers import REPO

README = (REPO / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_examples():
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs(index, converted_weights, monkeypatch):
    monkeypatch.setenv("WATSON_JAX_WEIGHTS", str(converted_weights))
    exec(compile(PYTHON_BLOCKS[index], f"README.md python block {index}", "exec"), {})


def test_ci_runs_the_readme_test_command():
    bash_blocks = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S))
    command = "python -m pytest -q tests"
    assert command in bash_blocks
    assert command in (REPO / ".ci" / "run").read_text()
    assert "pip install torch==2.13.0" in bash_blocks
