"""The set-up files agree with each other: one requirements list, the README's two commands, CI."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, str]:
    reqs = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            reqs[name.lower()] = version
    return reqs


def test_requirements_pin_torch_and_list_what_we_use() -> None:
    reqs = _requirements()
    assert reqs["torch"] == "2.14.1" and reqs["torchvision"] == "0.29.1"
    for name in ("transformers", "wandb", "scikit-learn", "scipy", "tqdm", "matplotlib", "pytest", "ruff"):
        assert name in reqs, name
    assert all(v for v in reqs.values()), "every requirement is pinned"


def test_dockerfile_installs_from_requirements_txt_only() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:\S+", text, re.M), "a CUDA base image"
    installs = re.findall(r"pip install ([^\n&;]+)", text)
    assert installs and all(args.strip() == "-r requirements.txt" for args in installs), installs
    assert "COPY requirements.txt" in text
    assert "MAIN_run_experiments.sh" in text


def _readme_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [ln.split("#", 1)[0].strip() for ln in block.strip().splitlines() if ln.split("#", 1)[0].strip()]


def test_readme_gives_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    main_job, tests = _readme_commands()
    assert main_job == "./MAIN_run_experiments.sh --suite quick"
    assert tests == "./scripts/test.sh"
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
    for script in ("MAIN_run_experiments.sh", "scripts/test.sh", "scripts/env.sh", ".ci/run"):
        assert (REPO / script).stat().st_mode & 0o111, f"{script} is executable"


def test_both_commands_set_up_the_repo_virtualenv_from_requirements() -> None:
    env = (REPO / "scripts" / "env.sh").read_text()
    assert "-m venv" in env and "requirements.txt" in env and ".venv" in env
    for script in ("MAIN_run_experiments.sh", "scripts/test.sh"):
        assert "env.sh" in (REPO / script).read_text(), script
