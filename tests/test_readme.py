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
    command = "python -m pytest -q -n 2 tests"
    assert command in bash_blocks
    assert command in (REPO / ".ci" / "run").read_text()
    assert "pip install torch==2.13.0" in bash_blocks


def test_compare_example_output_is_current(converted_weights, capsys):
    """The README's compare table is what the command prints for the original samples."""
    from helpers import shared

    from watson_jax.cli import main

    block = README.split("(`python -m watson_jax compare ex_ref.png ex_p0.png`):")[1].split("```")[1]
    documented = dict(line.split() for line in block.strip().splitlines())
    samples = shared("original_samples")
    assert (
        main(
            [
                "compare",
                str(samples / "ex_ref.png"),
                str(samples / "ex_p0.png"),
                "--weights-dir",
                str(converted_weights),
            ]
        )
        == 0
    )
    printed = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    # The test weights hold random stand-ins for the ImageNet backbones, so the README documents no
    # Deeploss numbers; every other line must be there.
    assert set(printed) - set(documented) == {"Deeploss-VGG", "Deeploss-Squeeze"}
    for name, value in documented.items():
        assert float(printed[name]) == pytest.approx(float(value), rel=1e-5), name
