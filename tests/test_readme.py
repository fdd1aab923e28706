"""Every command in the README runs (so that it cannot go stale), and the CLI help matches it.

The commands of the README's ```bash blocks run in order in a scratch folder, with one substitution: the
install-and-demo line becomes ``sgt-nlp demo --quick`` (the package is already installed here, and the full
demo is run by .ci/run, which runs the README's first command as written in a brand-new virtual environment).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

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


def _prepare(command: str) -> list[str] | None:
    if command.startswith("pip install"):
        return shlex.split("sgt-nlp demo --quick")
    if command.startswith("python -m pytest"):
        return None  # this is the suite itself
    if command.startswith("accelerate launch") and shutil.which("accelerate") is None:
        pytest.skip("accelerate launcher not on PATH")
    if command.startswith("torchrun") and shutil.which("torchrun") is None:
        pytest.skip("torchrun not on PATH")
    args = shlex.split(command)
    return [str(ROOT / a) if a.startswith(("scripts/", "sgt_nlp/")) else a for a in args]


@pytest.mark.skipif(shutil.which("sgt-nlp") is None, reason="the sgt-nlp console script is not installed")
def test_every_readme_command_runs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    ran = []
    for command in readme_commands():
        args = _prepare(command)
        if args is None:
            continue
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        ran.append(args[0] if args[0] != "sgt-nlp" else f"sgt-nlp {args[1]}")
    assert {
        "sgt-nlp demo",
        "sgt-nlp train",
        "sgt-nlp evaluate",
        "sgt-nlp rescore",
        "sgt-nlp report",
        "sgt-nlp explain",
        "sgt-nlp sanity",
    } <= set(ran)
    assert (tmp_path / "sgt_demo" / "report.html").is_file()
    assert (tmp_path / "runs" / "report.html").is_file()
    assert (tmp_path / "runs" / "eval_sgt" / "gradient" / "results.jsonl").is_file()
    assert (tmp_path / "runs" / "sgt" / "README.md").is_file()
    with_sanity = (tmp_path / "runs" / "report_with_sanity.html").read_text()
    assert 'id="sanity"' in with_sanity and 'id="metrics-table"' in with_sanity


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
    readme = README.read_text()
    for option in re.findall(rf"sgt-nlp {subcommand} ([^\n`]*)", readme):
        for flag in re.findall(r"(--[a-z_]+)", option):
            assert flag in help_text, f"README uses {flag} with 'sgt-nlp {subcommand}' but --help lacks it"
