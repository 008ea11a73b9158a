"""README.md stays short, its links resolve, and every command in it is exercised.

What counts as a command (the rule this module enforces):

- every line of a fenced code block whose info string is `bash`, `sh` or `shell`, and in a
  `console` block every line that starts with the prompt `$ ` (the prompt removed); blank
  lines and lines that are only a `# comment` are not commands;
- a trailing ` # comment` (outside quotes) is dropped, a line ending in `\\` goes on with the
  next, and runs of spaces count as one;
- every other fence must be `text` or `yaml` (shown, never run): an unlabelled fence or
  another language fails, and so does an indented code block, so no command can hide.

Every command must be a key of COMMANDS; its value is the check that exercises it. Cheap
commands run as written, in a copy of the repository (tests/test_workflow.copy_repo);
`snakemake` commands that would run jobs run as a dry run (`snakemake -n …`), which plans
every job, checks the experiment file and the profile, and writes nothing. What no check can
run here is tied to what runs it: the Quick start's test command is the last line of
`.ci/run`, verbatim; the report needs a finished run, which tests/test_workflow.py makes and
reports. A command added to the README without an entry fails
`test_readme_command_is_exercised`; an entry whose command left the README fails
`test_every_entry_is_still_in_the_readme`.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from test_workflow import copy_repo, job_stats

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
MAX_LINES = 120
COMMAND_FENCES = {"bash", "sh", "shell", "console"}
SHOWN_FENCES = {"text", "yaml"}

QUICK_START_RUN = "python3 -m pip install -e . && snakemake --cores 2"
QUICK_START_TEST = "python3 -m pip install -e '.[test]' && python3 -m pytest -ra"
QUICK_TIER = 'python3 -m pytest -ra -m "not slow"'


# --- reading the README -------------------------------------------------------------------

def _drop_comment(line: str) -> str:
    """The line without a trailing ` # comment`; a `#` inside quotes or a word stays."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """(section heading, fence info string, lines) for every fenced code block."""
    blocks, section, fence, lines = [], "", None, []
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None and line.startswith("## "):
            section = line[3:].strip()
        if stripped.startswith("```"):
            if fence is None:
                fence, lines = stripped[3:].strip(), []
            else:
                blocks.append((section, fence, lines))
                fence = None
        elif fence is not None:
            lines.append(line)
    assert fence is None, "README.md: a code fence is never closed"
    return blocks


def readme_commands(text: str | None = None) -> list[tuple[str, str]]:
    """(section heading, command) for every command of README.md, by the rule above."""
    text = README.read_text() if text is None else text
    commands = []
    for section, fence, lines in readme_blocks(text):
        if fence not in COMMAND_FENCES:
            continue
        pending = ""
        for line in lines:
            if fence == "console":
                if not line.startswith("$ ") and not pending:
                    continue  # output
                line = line[2:] if line.startswith("$ ") else line
            line = pending + _drop_comment(line).strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if line:
                commands.append((section, " ".join(line.split())))
        assert not pending, f"README.md: a command in {section!r} ends with a backslash"
    return commands


# --- running commands in a copy of the repository ----------------------------------------

@pytest.fixture(scope="module")
def workspace(repo_root, jax_cache_dir, tmp_path_factory) -> Path:
    return copy_repo(repo_root, tmp_path_factory.mktemp("readme") / "repo", jax_cache_dir)


def shell(workdir: Path, command: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """The command as a user types it, in bash, with this interpreter's scripts first on
    PATH (the `snakemake` and `lambda-hat` that pip installed beside it)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"`{command}` failed ({result.returncode}):\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def dry_run(workdir: Path, command: str) -> dict[str, int]:
    """`snakemake …` as `snakemake -n …`: every job planned, nothing run; its job counts."""
    assert command.startswith("snakemake "), command
    result = shell(workdir, "snakemake -n " + command[len("snakemake "):])
    assert "This was a dry-run" in result.stdout + result.stderr, result.stdout[-2000:]
    assert not (workdir / "results").exists(), "a dry run wrote results"
    stats = job_stats(result.stdout)
    assert stats.get("sample", 0) > 0 and stats.get("aggregate") == 1, stats
    return stats


def the_test_does(module, test: str, *fragments: str):
    """`module.test` exists and its source has every fragment: it runs what is asked of it."""
    source = inspect.getsource(getattr(module, test))
    for fragment in fragments:
        assert fragment in source, f"{module.__name__}.{test} no longer has {fragment!r}"


def install_and_run(command: str) -> tuple[str, str]:
    install, run = command.split(" && ")
    return install, run


# --- one check per README command --------------------------------------------------------

def check_quick_start_run(command, request):
    """The install is the test command's without the test extra (CI runs that one), the
    default experiment needs no extra, and its run is planned as a dry run."""
    install, run = install_and_run(command)
    test_install, _ = install_and_run(QUICK_START_TEST)
    assert test_install == install.replace(" -e .", " -e '.[test]'"), (install, test_install)
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("snakemake>") for dep in dependencies["dependencies"])
    assert "test" in dependencies["optional-dependencies"]
    default = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    assert not (default.get("exports") or {}).get("arviz"), "the default run needs [arviz]"
    assert "digits" not in str(default.get("targets")), "the default run needs [digits]"

    from lambda_hat.config import Experiment

    workdir = request.getfixturevalue("workspace")
    experiment = Experiment.load(workdir / "config" / "config.yaml")
    stats = dry_run(workdir, run)
    assert stats["build_target"] == len(experiment.target_names)
    assert stats["sample"] == len(experiment.target_names) * len(experiment.sampler_names)


def check_ci_runs_it(command, request):
    """CI (`.ci/run`) ends with this very command; the suite it runs includes this test."""
    lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines[-1] == command, f".ci/run ends with {lines[-1]!r}, not the README's {command!r}"


def check_dry_run(command, request):
    dry_run(request.getfixturevalue("workspace"), command)


def check_as_written(command, request):
    shell(request.getfixturevalue("workspace"), command)


def check_quick_tier(command, request):
    """The quick tier is the full suite's pytest command with `-m "not slow"`; it selects
    (collects) some tests and leaves the slow ones out."""
    _, full = install_and_run(QUICK_START_TEST)
    assert command == f'{full} -m "not slow"'
    result = shell(REPO_ROOT, f"{command} --collect-only -q -n 0 -p no:cacheprovider")
    assert re.search(r"\d+/\d+ tests collected \(\d+ deselected\)", result.stdout), \
        result.stdout[-2000:]


def check_dag(command, request):
    """The job graph as dot text; through graphviz into dag.svg where `dot` is installed."""
    workdir = request.getfixturevalue("workspace")
    producer, consumer = command.split(" | ")
    assert shell(workdir, producer).stdout.lstrip().startswith("digraph")
    if shutil.which("dot"):
        shell(workdir, command)
        assert "<svg" in (workdir / "dag.svg").read_text()


def check_report(command, request):
    """A report needs a finished run (a dry run of it fails): tests/test_workflow.py makes
    one, the smoke experiment, and reports it with `--report`."""
    import test_workflow

    assert command.startswith("snakemake --report ")
    the_test_does(test_workflow, "test_report_contains_the_summary_figure_and_table",
                  '"--report"')


def check_gallery(command, request):
    """Planned here (the gallery page and its copies of the figures); tests/test_workflow.py
    runs it for real."""
    import test_workflow

    the_test_does(test_workflow, "test_gallery_is_opt_in_and_lists_every_sampler", '"gallery"')
    stats = dry_run(request.getfixturevalue("workspace"), command)
    assert stats.get("gallery_page") == 1, stats


def check_slurm_profile(command, request):
    """The profile plans the default experiment without a cluster (a dry run submits
    nothing); tests/test_slurm.py runs the workflow through this profile on a local Slurm."""
    dry_run(request.getfixturevalue("workspace"), command)
    slurm_tests = (REPO_ROOT / "tests" / "test_slurm.py").read_text()
    assert '"profiles" / "slurm" / "config.yaml"' in slurm_tests


def check_smoke(command, request):
    stats = dry_run(request.getfixturevalue("workspace"), command)
    assert stats.get("build_target", 0) >= 1, stats


COMMANDS = {
    QUICK_START_RUN: check_quick_start_run,
    QUICK_START_TEST: check_ci_runs_it,
    "snakemake -n": check_as_written,
    "snakemake --cores 2 --configfile config/smoke.yaml": check_smoke,
    "lambda-hat check --config config/smoke.yaml": check_as_written,
    "snakemake --dag | dot -Tsvg > dag.svg": check_dag,
    "snakemake --report results/default/report.html": check_report,
    "snakemake --cores 2 gallery": check_gallery,
    "snakemake --profile profiles/slurm": check_slurm_profile,
    QUICK_TIER: check_quick_tier,
}


# --- the tests ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [command for _, command in readme_commands()])
def test_readme_command_is_exercised(command, request):
    check = COMMANDS.get(command)
    assert check is not None, (f"README.md's command {command!r} is exercised by no test: "
                               "add a check to COMMANDS in tests/test_readme.py")
    check(command, request)


def test_every_entry_is_still_in_the_readme():
    commands = {command for _, command in readme_commands()}
    assert set(COMMANDS) <= commands, f"not in README.md any more: {set(COMMANDS) - commands}"


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines, more than {MAX_LINES}"


def test_quick_start_has_two_commands_run_then_test():
    """A fresh machine needs Python and pip only: one command runs the default experiment,
    installing no extra; the other installs the test extra and runs the suite."""
    quick = [command for section, command in readme_commands() if section == "Quick start"]
    assert quick == [QUICK_START_RUN, QUICK_START_TEST]


def test_every_fence_is_labelled_and_no_code_is_indented():
    text = README.read_text()
    for section, fence, _ in readme_blocks(text):
        assert fence in COMMAND_FENCES | SHOWN_FENCES, \
            f"README.md, {section!r}: a code block labelled {fence or 'nothing'!r}"
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            inside = not inside
        elif not inside and line.strip():
            assert not line.startswith(("    ", "\t")), \
                f"README.md:{number}: an indented code block; fence it instead"


def test_parsing_rule():
    text = "\n".join([
        "## A", "```bash", "# a comment", "", "run --flag 'a # b'   # says what",
        "long \\", "  --option", "```", "```console", "$ cmd  two", "output", "```",
        "```text", "not a command", "```"])
    assert readme_commands(text) == [("A", "run --flag 'a # b'"), ("A", "long --option"),
                                     ("A", "cmd two")]


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    headings, inside = [], False
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            inside = not inside
        elif not inside and re.match(r"#{1,6} ", line):
            headings.append(_slug(line.lstrip("#")))
    return set(headings)


def test_relative_links_point_to_existing_files_and_headings():
    text, inside, links = README.read_text(), False, []
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = not inside
        elif not inside:
            links += LINK.findall(re.sub(r"`[^`]*`", "", line))
    assert links
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto
        path, _, anchor = link.partition("#")
        target = (README.parent / path) if path else README
        assert target.is_file(), f"README.md links to {link}, which does not exist"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"README.md links to {link}: no such heading"
