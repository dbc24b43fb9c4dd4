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


def _fake_venv(tmp_path: Path) -> dict[str, str]:
    """A venv whose python prints its arguments and whose ruff passes: what test.sh would run."""
    import hashlib
    import os

    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in (("python", 'printf "%s\\n" "$@"'), ("ruff", "true")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    stamp = hashlib.sha256((REPO / "requirements.txt").read_bytes()).hexdigest()
    (tmp_path / "venv" / ".requirements.sha256").write_text(stamp + "\n")
    return {**os.environ, "SSD_VENV": str(tmp_path / "venv")}


def test_test_script_combines_a_users_marker_with_its_own(tmp_path: Path) -> None:
    """`-m slow` must select the slow tests (not "not slow and slow" = nothing, nor replace the default
    for other markers); other arguments pass through."""
    import subprocess

    env = _fake_venv(tmp_path)

    def pytest_args(*args: str) -> list[str]:
        out = subprocess.run(["bash", str(REPO / "scripts" / "test.sh"), *args], env=env, capture_output=True,
                             text=True, timeout=60, check=True).stdout
        return out.splitlines()

    assert pytest_args() == ["-m", "pytest", "-m", "not slow", "-q"]
    assert pytest_args("-m", "slow") == ["-m", "pytest", "-m", "slow", "-q"]
    assert pytest_args("-m", "not cuda", "-k", "report") == ["-m", "pytest", "-m", "not slow and (not cuda)", "-q",
                                                              "-k", "report"]
    assert pytest_args("-mslow or not slow", "-x") == ["-m", "pytest", "-m", "slow or not slow", "-q", "-x"]


def test_docker_base_image_matches_the_pinned_torchs_cuda() -> None:
    """The image's CUDA major version is the one the installed (pinned) torch wheels bring; a CUDA 12 base
    under CUDA 13 wheels declares the wrong driver requirement. The Dockerfile names the driver it needs."""
    import torch

    if torch.version.cuda is None:
        import pytest

        pytest.skip("this torch build has no CUDA: nothing to compare the image with")
    text = (REPO / "Dockerfile").read_text()
    tag = re.search(r"^FROM nvidia/cuda:(\d+)\.(\d+)", text, re.M)
    assert tag is not None
    assert tag.group(1) == torch.version.cuda.split(".")[0], (tag.group(0), torch.version.cuda)
    assert re.search(r"driver[^\n]*>= ?\d{3}", text), "the host driver the CUDA version needs"


def _docker_run_line() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Docker", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return " ".join(line.rstrip("\\").strip() for line in block.splitlines() if line.strip())


def test_dockerignore_keeps_state_out_and_readme_mounts_it() -> None:
    """`COPY . .` must not ship the venv, data, checkpoints, results, cache or wandb logs; the documented
    `docker run` mounts each folder a run writes (wandb logs live under results/), so nothing dies
    with the container."""
    ignored = {line.strip().strip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "data", "checkpoints", "results", "cache", "wandb"} <= ignored
    workdir = re.search(r"^WORKDIR (\S+)", (REPO / "Dockerfile").read_text(), re.M)
    assert workdir is not None
    run = _docker_run_line()
    assert "docker run --gpus all" in run
    mounts = dict(m.groups() for m in re.finditer(r"-v (\S+?):(\S+?)(?::ro)?(?=\s)", run + " "))
    targets = {t.rstrip("/") for t in mounts.values()}
    for folder in ("data", "checkpoints", "results", "cache"):
        assert f"{workdir.group(1)}/{folder}" in targets, folder
    import ssd.cli

    assert ssd.cli.DEFAULT_RESULTS["full_class"].startswith("results/")  # so wandb (results/wandb) is mounted
