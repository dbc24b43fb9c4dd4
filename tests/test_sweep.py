"""α sweeps on Digits: importances once, one row per point and method, huge α = the original model."""

from __future__ import annotations

from pathlib import Path

import pytest

import ssd.methods.ssd_methods as ssd_methods
from ssd.errors import UserError
from ssd.experiment import RunSpec, Session
from ssd.results import read_rows
from ssd.sweep import main, parse_floats, run_sweep, sweep_param
from ssd.train import pretrain

ALPHAS = (1.0, 10.0, 1e12)  # 1e12: nothing is that much more important to Df than to D
BASELINE_ALPHAS = (0.1, 1.0)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits_convnet")
    pretrain("ConvNet", "Digits", epochs=3, out=out, progress=False, log=None)
    return out / "best.pt"


def _spec(ckpt: Path) -> RunSpec:
    return RunSpec(task="full_class", net="ConvNet", dataset="Digits", weight_path=str(ckpt), method="ssd",
                   forget_class="2", seed=0, device="cpu", retain_eval_size=300,
                   overrides={"batch_size": 256})  # fewer importance passes: a faster test


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count importance passes and the samples each one saw (D is the large set)."""
    seen: list[int] = []
    real = ssd_methods.compute_importances

    def counted(model, data, **kw):  # type: ignore[no-untyped-def]
        seen.append(len(data))
        return real(model, data, **kw)

    monkeypatch.setattr(ssd_methods, "compute_importances", counted)
    return seen


def test_sweep_reuses_importances_and_huge_alpha_is_the_baseline(ckpt: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _counting(monkeypatch)
    session = Session(tmp_path / "cache")
    sunk: list[dict] = []
    rows = run_sweep(_spec(ckpt), alphas=ALPHAS, lambdas=(1.0,), baseline_alphas=BASELINE_ALPHAS,
                     session=session, sink=sunk.append)
    assert len(seen) == 2 and seen[0] > seen[1]  # D once, Df once, for all three α
    assert list(tmp_path.joinpath("cache", "importances").glob("importance-*.pt"))  # D's importances, where runs keep them
    assert sunk == rows
    counts = {m: sum(r["method"] == m for r in rows) for m in {r["method"] for r in rows}}
    assert counts == {"baseline": 1, "ssd": 3, "output_dampening": 2, "global_dampening": 2}
    assert {r["sweep"]["value"] for r in rows if r["method"] == "ssd"} == set(ALPHAS)
    assert all(r["sweep"]["param"] == "alpha" for r in rows if r["method"] != "baseline")
    assert len({r["run_key"] for r in rows}) == len(rows)

    base = rows[0]
    assert base["method"] == "baseline" and base["sweep"]["param"] == "none"
    huge = next(r for r in rows if r["method"] == "ssd" and r["sweep"]["value"] == 1e12)
    assert huge["sweep"]["selected"] == 0
    for k in ("Df", "DfTest", "DrTest", "DrTrain", "MIA", "DfLoss"):
        assert huge["metrics"][k] == base["metrics"][k], k
    strong = next(r for r in rows if r["method"] == "ssd" and r["sweep"]["value"] == 1.0)
    assert strong["sweep"]["selected"] > 0 and strong["metrics"]["Df"] < base["metrics"]["Df"]
    ident = next(r for r in rows if r["method"] == "global_dampening" and r["sweep"]["value"] == 1.0)
    assert ident["sweep"]["selected"] == 0 and ident["metrics"]["DrTest"] == base["metrics"]["DrTest"]
    for r in rows:  # shaped like run_one's rows, so the report reads them
        assert {"metrics", "details", "config", "checkpoint_sha256", "split_hash", "forget_class_name"} <= set(r)
        assert "forget_confusion" in r["details"]

    seen.clear()  # a second sweep on the same checkpoint and split: D comes from the cache
    again = run_sweep(_spec(ckpt), alphas=(10.0,), lambdas=(0.5, 2.0), methods=("ssd",), session=session)
    assert len(seen) == 1
    assert [r["sweep"]["param"] for r in again[1:]] == ["lambda", "lambda"]
    assert all(r["sweep"]["cache_hit"] for r in again[1:])


def test_sweep_cli_writes_rows(ckpt: Path, tmp_path: Path) -> None:
    res = tmp_path / "sweep.jsonl"
    main(["-net", "ConvNet", "-weight_path", str(ckpt), "-dataset", "Digits", "-forget_class", "2",
          "--alphas", "5,50", "--methods", "ssd,output_dampening", "--baseline-alphas", "0.5",
          "--set", "order=paper", "--retain-eval-size", "300", "--results", str(res),
          "--cache-dir", str(tmp_path / "c")])
    rows = read_rows(res)
    assert [r["method"] for r in rows] == ["baseline", "ssd", "ssd", "output_dampening"]
    assert rows[1]["config"]["method"]["order"] == "paper"
    assert rows[3]["config"]["method"]["alpha"] == 0.5


def test_flags_and_errors(ckpt: Path, tmp_path: Path) -> None:
    assert parse_floats("1, 2,5", "--alphas") == [1.0, 2.0, 5.0]
    with pytest.raises(UserError, match="--alphas"):
        parse_floats("1,x", "--alphas")
    assert (sweep_param([1, 2], [1]), sweep_param([1], [1, 2]), sweep_param([1, 2], [1, 2])) == \
        ("alpha", "lambda", "grid")
    with pytest.raises(UserError, match="no alpha to sweep"):
        run_sweep(_spec(ckpt), methods=("finetune",), session=Session(tmp_path))


def test_two_suite_sweeps_on_one_forget_request_record_its_baseline_once(
        ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An α sweep and a λ sweep on one forget request (as cpu-paper's Trouser sweeps) share their
    baseline row: its run key does not depend on the grid. The first sweep records it, the second
    skips it. Old: both computed it; without the writer's key check both rows were appended (the
    duplicate in docs/results/cpu-paper/cpu-paper.jsonl), with it the second was computed for
    nothing and refused ("already recorded")."""
    import json

    from ssd.suite import run_suite

    results = tmp_path / "two.jsonl"
    suite = tmp_path / "two.toml"
    sweep = 'task = "full_class"\ndataset = "Digits"\nforget_class = "2"\nmethods = ["ssd"]\n'
    suite.write_text(f"""
results = "{results}"
seeds = [0]
methods = ["baseline"]
nets = ["ConvNet"]
retain_eval_size = 300
[[tasks]]
task = "random"
dataset = "Digits"
n_forget = 20
[[sweeps]]
{sweep}alphas = [1, 100]
[[sweeps]]
{sweep}alphas = [10]
lambdas = [0.5, 2]
[checkpoints]
"ConvNet/Digits" = "{ckpt}"
""")
    args = ["--suite", str(suite), "--no-progress", "--no-report", "--cache-dir", str(tmp_path / "cache")]
    run_suite(args)
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in results.read_text().splitlines()]  # the file as written, not collapsed
    assert len({r["run_key"] for r in lines}) == len(lines)
    sweeps = [r["sweep"] for r in lines if "sweep" in r]
    assert sorted(s["param"] for s in sweeps) == ["alpha", "alpha", "lambda", "lambda", "none"]
    assert "already recorded" not in err, err
    run_suite(args)  # everything recorded: neither sweep runs again
    err = capsys.readouterr().err
    assert "[suite] sweep" not in err and len(results.read_text().splitlines()) == len(lines)


def test_sweep_values_must_be_finite_and_not_negative() -> None:
    """α/λ grids are refused in one line before any work (ssd_alpha_sweep.py's --alphas -1 ended in
    dampen's ValueError traceback); the α keywords pass through."""
    from ssd.errors import UserError
    from ssd.sweep import parse_floats

    assert parse_floats("0,2.5 auto", "--alphas", keywords=("auto",)) == [0.0, 2.5, "auto"]
    for bad in ("-1", "1,nan", "inf"):
        with pytest.raises(UserError, match="finite numbers ≥ 0"):
            parse_floats(bad, "--alphas")
