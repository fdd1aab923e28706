"""The README's first two commands are the ones CI runs, every dependency is bounded, and every option the
README and the user guide (docs/) pass to a subcommand is in that subcommand's --help.

That every command of the README and docs/ runs is tests/test_snippets.py's job (in a scratch folder, after
``sgt-nlp demo --quick``; .ci/run runs the README's first command in full, in a new virtual environment).
"""

from __future__ import annotations

import re

import pytest

from sgt_nlp.cli import main
from tests.toy_data import ROOT

README = ROOT / "README.md"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_starts_with_the_two_commands():
    commands = readme_commands()
    # The install must bring what the test command needs (pytest): the test extra, in the same command.
    assert commands[0] == 'pip install torch==2.13.0 -e ".[test]" && sgt-nlp demo'
    assert commands[1] == "python -m pytest -q"
    # CI runs these two lines as the README writes them, in a brand-new virtual environment.
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv" in ci and "README.md" in ci and 'eval "$install"' in ci
    # The test command is written out literally (so that CI visibly runs pytest) and checked against the
    # README's.
    assert '[[ $test_command == "python -m pytest -q" ]]' in ci
    assert ci.rstrip().splitlines()[-1] == commands[1]


def test_every_dependency_has_an_upper_bound():
    """A release nobody ran the suite with must not be installed by the README's command."""
    import configparser

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    requirements = [r.strip() for r in setup["options"]["install_requires"].splitlines() if r.strip()]
    requirements += [r.strip() for r in setup["options.extras_require"]["test"].splitlines() if r.strip()]
    unbounded = [r for r in requirements if "<" not in r and "==" not in r]
    assert requirements and not unbounded, unbounded


@pytest.mark.parametrize(
    "subcommand", ["demo", "experiment", "train", "evaluate", "rescore", "explain", "report", "sanity"]
)
def test_help_of_every_subcommand_names_its_options(subcommand, capsys):
    # in this process (the console script itself runs in test_every_readme_command_runs): a subprocess per
    # subcommand would spend its time importing transformers again
    with pytest.raises(SystemExit) as done:
        main([subcommand, "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for option in re.findall(rf"sgt-nlp {subcommand} ([^\n`]*)", page.read_text(encoding="utf-8")):
            for flag in re.findall(r"(--[a-z_]+)", option):
                assert flag in help_text, (
                    f"{page.name} uses {flag} with 'sgt-nlp {subcommand}' but --help lacks it"
                )
