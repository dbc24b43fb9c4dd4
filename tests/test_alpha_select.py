"""α = "auto" (Adaptive SSD's percentile rule) and α = "search" (a grid scored on training data).

What each test would catch is said in its docstring.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ssd.methods  # noqa: F401  (registers the methods)
import ssd.metrics
from ssd.dampening import dampen
from ssd.errors import UserError
from ssd.methods.alpha_select import (
    DEFAULT_GRID,
    assd_percentile,
    auto_alpha,
    choose,
    importance_ratios,
    percentile,
    selection_sets,
)
from ssd.methods.registry import METHODS
from ssd.methods.ssd_methods import SSDConfig, ssd_importances
from ssd.splits import Splits


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
@pytest.mark.parametrize("q", [0.0, 37.5, 97.6, 99.85, 100.0])
def test_percentile_is_numpys_linear_percentile(n: int, q: float) -> None:
    """An off-by-one in the rank or the interpolation (ASSD calls np.nanpercentile) fails here."""
    values = torch.rand(n, generator=torch.Generator().manual_seed(n)) * 50
    assert percentile(values, q) == pytest.approx(float(np.percentile(values.double().numpy(), q)), rel=1e-6)


def test_assd_percentile_follows_the_forget_share() -> None:
    """p = 100 − ln(1 + 100·|Df|/|D|): nothing to forget → 100; 1 % of D → 100 − ln 2; it falls as Df grows."""
    assert assd_percentile(0, 1000) == 100.0
    assert assd_percentile(10, 1000) == pytest.approx(100 - math.log(2))
    shares = [assd_percentile(k, 60_000) for k in (1, 100, 6_000, 30_000)]
    assert shares == sorted(shares, reverse=True) and 96 < shares[-1] < 96.1  # half of D: 100 − ln 51


def _importances() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    d = {"a": torch.rand(40, 30, generator=g), "b": torch.rand(50, generator=g)}
    f = {"a": torch.rand(40, 30, generator=g) ** 3 * 20, "b": torch.rand(50, generator=g)}
    d["a"][0, :5] = 0.0  # x/0: infinite ratio, left out of the percentile (always selected by the rule)
    f["a"][0, :2] = 0.0  # two of them 0/0: NaN, left out
    return d, f


def test_auto_alpha_is_the_percentile_of_finite_ratios() -> None:
    """Inverting the ratio (imp_D/imp_Df), keeping inf or NaN, or using the wrong share would move α."""
    d, f = _importances()
    alpha, record = auto_alpha(d, f, n_forget=600, n_all=6000)
    ratios = np.concatenate([(f[k] / d[k]).flatten().numpy() for k in d])
    expected = np.percentile(ratios[np.isfinite(ratios)], 100 - math.log(1 + 10))
    assert alpha == pytest.approx(float(expected), rel=1e-6)
    assert record["mode"] == "auto" and record["finite_ratios"] == 40 * 30 + 50 - 5
    assert importance_ratios(d, f, keep=lambda n: n == "b").numel() == 50  # a parameter filter narrows the pool


def test_auto_selects_the_top_share_of_ratios() -> None:
    """Dampening at the auto α selects ≈ ln(1 + 100·share) % of the finite ratios (the largest ones) plus
    the x/0 elements; selecting the smallest ratios instead would select ≈ 97.6 %."""
    d, f = _importances()
    model = nn.Module()
    model.a = nn.Parameter(torch.ones(40, 30))
    model.b = nn.Parameter(torch.ones(50))
    alpha, rec = auto_alpha(d, f, n_forget=600, n_all=6000)
    stats = dampen(model, d, f, alpha=alpha, lam=1.0)
    top = rec["finite_ratios"] * math.log(11) / 100
    assert abs(stats.total_selected - (top + 3)) <= 2  # 3 = the x/0 elements with f > 0
    ratios = torch.cat([(f[k] / d[k]).flatten() for k in d])
    assert torch.all(ratios[torch.isfinite(ratios) & (ratios > alpha * 1.0001)] > alpha)


def test_choose_takes_the_mildest_alpha_that_forgets_within_budget() -> None:
    """Each branch of the stated rule: `met` (largest qualifying α), `closest`, `budget_exceeded`."""
    def c(alpha: float, f: float, r: float, lam: float = 1.0) -> dict:
        return {"alpha": alpha, "lam": lam, "forget_acc": f, "retain_acc": r}

    cands = [c(20, 90, 99), c(10, 8, 98.5), c(5, 0, 98.2), c(2, 0, 95)]
    assert choose(cands, target=10, budget=1.0, retain_base=99) == (1, "met")
    assert choose(cands, target=5, budget=1.0, retain_base=99) == (2, "met")
    assert choose(cands, target=5, budget=0.6, retain_base=99) == (1, "closest")  # α=5 costs 0.8 points
    assert choose([c(5, 0, 90), c(2, 0, 80)], target=5, budget=1.0, retain_base=99) == (0, "budget_exceeded")
    assert choose([c(5, 0, 99, lam=0.5), c(5, 0, 99, lam=1.0)], 5, 1.0, 99) == (1, "met")  # milder λ on a tie


def test_selection_sets_come_from_the_training_split_and_avoid_the_scored_retain_rows(
        task_setup: dict[str, tuple[nn.Module, Splits]]) -> None:
    _, s = task_setup["full_class"]
    f_sel, r_sel = selection_sets(s.forget, s.retain, s.retain.subset(range(100)), 20, 50, seed=0)
    assert len(f_sel) == 20 and len(r_sel) == 50
    assert bool(torch.isin(f_sel.indices, s.forget.indices).all()) and bool(torch.isin(r_sel.indices, s.retain.indices).all())
    assert not bool(torch.isin(r_sel.indices, s.retain.indices[:100]).any())


def _marked_test(s: Splits) -> Splits:
    """The same splits with every test image set to 255 everywhere: a test image is recognisable."""
    def mark(d):  # type: ignore[no-untyped-def]
        return dataclasses.replace(d, images=torch.full_like(d.images, 255))

    return dataclasses.replace(s, test=mark(s.test), forget_test=mark(s.forget_test),
                               retain_test=mark(s.retain_test), context=dict(s.context))


def test_search_never_scores_a_test_image(trained: tuple[nn.Module, Splits], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every image the search scores is a training image at its own index, never one of the test set
    (choosing α on forget_test/retain_test would leak the test set into the method)."""
    model, s = trained
    s = _marked_test(s)
    scored = []
    real = ssd.metrics.predict_logits

    def spy(m, data, **kw):  # type: ignore[no-untyped-def]
        scored.append(data)
        return real(m, data, **kw)

    monkeypatch.setattr(ssd.metrics, "predict_logits", spy)
    METHODS.get("ssd").fn(copy.deepcopy(model), s, SSDConfig(alpha="search", search_alphas=[1, 10, 100]))
    assert len(scored) == 2 * (1 + 3)  # forget and retain sets: the original + 3 candidates
    train_pos = {int(i): p for p, i in enumerate(s.train.indices)}
    for data in scored:
        assert not bool((data.images == 255).flatten(1).all(1).any()), "a test image was scored"
        rows = torch.tensor([train_pos[int(i)] for i in data.indices])
        assert torch.equal(data.images.cpu(), s.train.images[rows].cpu())


def test_search_records_every_candidate_and_ends_on_the_chosen_alpha(trained: tuple[nn.Module, Splits]) -> None:
    """The row holds the rule, target, budget and every candidate; the weights equal plain SSD at the
    chosen α (a search that forgot to restore the weights between candidates would compound them)."""
    model, s = trained
    grid = [1.0, 3.0, 10.0, 30.0]
    searched = METHODS.get("ssd").fn(copy.deepcopy(model), s, SSDConfig(alpha="search", search_alphas=grid))
    rec = s.context["ssd_stats"]["alpha_select"]
    assert [c["alpha"] for c in rec["candidates"]] == sorted(grid, reverse=True)
    assert {"rule", "target", "budget", "branch", "retain_base", "forget_base"} <= set(rec)
    assert rec["heldout_from"] == "train" and rec["target"] == pytest.approx(10.0)  # chance on 10 digits
    assert s.context["ssd_stats"]["alpha"] == rec["alpha"]
    plain = METHODS.get("ssd").fn(copy.deepcopy(model), s, SSDConfig(alpha=rec["alpha"]))
    for p, q in zip(searched.parameters(), plain.parameters(), strict=True):
        assert torch.equal(p, q)
    chosen = next(c for c in rec["candidates"] if c["alpha"] == rec["alpha"])
    assert chosen["selected"] == s.context["ssd_stats"]["total_selected"]


def test_auto_uses_assds_reference_and_the_training_forget_share(trained: tuple[nn.Module, Splits]) -> None:
    """auto = ASSD's D (the retain set) and share |Df|/(|Dr|+|Df|), unless `reference` is set; a numeric α
    keeps the paper's D. Computing the ratio against D = retain ∪ forget, or the share against |Dr|,
    would give another α."""
    model, s = trained
    METHODS.get("lfssd").fn(copy.deepcopy(model), s, SSDConfig(alpha="auto", mode="lf"))
    st = s.context["ssd_stats"]
    rec = st["alpha_select"]
    assert (rec["n_forget"], rec["n_all"]) == (len(s.forget), len(s.train)) and st["mode"] == "lf"
    assert st["reference"] == "retain"
    imp_d, imp_df, _ = ssd_importances(model, s.retain, s.forget, SSDConfig(mode="lf", reference="retain"))
    assert st["alpha"] == pytest.approx(auto_alpha(imp_d, imp_df, len(s.forget), len(s.train))[0])
    METHODS.get("lfssd").fn(copy.deepcopy(model), s, SSDConfig(alpha="auto", mode="lf", reference="full"))
    assert s.context["ssd_stats"]["reference"] == "full"
    assert s.context["ssd_stats"]["alpha_select"]["n_all"] == len(s.train)
    METHODS.get("ssd").fn(copy.deepcopy(model), s, SSDConfig(alpha=10.0))
    assert s.context["ssd_stats"]["reference"] == "full"


@pytest.mark.parametrize("bad", [{"alpha": "Auto"}, {"alpha": -1.0}, {"alpha": True}, {"search_budget": -1},
                                 {"search_alphas": []}, {"search_target": 150.0}])
def test_bad_alpha_settings_are_one_line_errors(trained: tuple[nn.Module, Splits], bad: dict) -> None:
    model, s = trained
    with pytest.raises(UserError):
        METHODS.get("ssd").fn(copy.deepcopy(model), s, SSDConfig(**bad))


def test_default_grid_brackets_the_papers_alphas() -> None:
    assert {5.0, 10.0, 25.0} <= set(DEFAULT_GRID) and min(DEFAULT_GRID) <= 1 and max(DEFAULT_GRID) >= 100


# ------------------------------------------------------------------ mains, suites, sweeps


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ssd.train import pretrain

    out = tmp_path_factory.mktemp("digits_alpha")
    pretrain("ConvNet", "Digits", epochs=3, out=out, progress=False, log=None)
    return out / "best.pt"


def test_main_takes_alpha_keywords_and_prints_the_choice(digits_ckpt: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import forget_full_class_main

    common = ["-net", "ConvNet", "-weight_path", str(digits_ckpt), "-dataset", "Digits", "-method", "ssd_tuning",
              "-forget_class", "2", "--logger", "none", "--results", str(tmp_path / "r.jsonl"),
              "--cache-dir", str(tmp_path / "cache"), "--retain-eval-size", "200"]
    row = forget_full_class_main.main([*common, "--alpha", "auto"])
    assert row["method_stats"]["alpha_select"]["mode"] == "auto"
    assert row["config"]["method"]["alpha"] == "auto"
    assert "alpha=auto chose α = " in capsys.readouterr().out
    row = forget_full_class_main.main([*common, "--alpha", "search", "--set", "search_alphas=[5,50]"])
    assert len(row["method_stats"]["alpha_select"]["candidates"]) == 2
    assert "alpha=search chose α = " in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        forget_full_class_main.main([*common, "--alpha", "sometimes"])
    assert err.value.code == 2


def test_suite_variants_are_labelled_rows_and_resume(digits_ckpt: Path, tmp_path: Path) -> None:
    """`[variants]` adds labelled rows beside the plain method; a second run finds them all done."""
    from ssd.results import read_rows
    from ssd.suite import run_suite

    suite, results = tmp_path / "v.toml", tmp_path / "v.jsonl"
    suite.write_text(f"""
results = "{results}"
seeds = [0]
methods = ["ssd"]
retain_eval_size = 200
[method_settings.ssd]
search_alphas = [5, 50]
[variants]
"ssd@auto" = {{method = "ssd", alpha = "auto"}}
"ssd@search" = {{method = "ssd", alpha = "search"}}
"ssd@10" = {{method = "ssd", alpha = 10}}
[[tasks]]
task = "full_class"
dataset = "Digits"
classes = ["2"]
[checkpoints]
"ConvNet/Digits" = "{digits_ckpt}"
""")
    args = ["--suite", str(suite), "--no-progress", "--cache-dir", str(tmp_path / "cache"), "--no-report"]
    rows = run_suite(args)
    assert sorted(r["method"] for r in rows) == ["ssd", "ssd@10", "ssd@auto", "ssd@search"]
    by = {r["method"]: r for r in rows}
    assert by["ssd@auto"]["variant_of"] == "ssd" and by["ssd@auto"]["method_stats"]["alpha_select"]["mode"] == "auto"
    assert len(by["ssd@search"]["method_stats"]["alpha_select"]["candidates"]) == 2  # method_settings carried over
    assert by["ssd@10"]["metrics"]["Df"] == by["ssd"]["metrics"]["Df"]  # same run, its own labelled row
    run_suite(args)
    assert len(read_rows(results)) == 4



def test_in_the_authors_order_auto_and_search_forget_where_alpha_10_does_not(
        trained: tuple[nn.Module, Splits]) -> None:
    """The issue's case on small data (tiny Digits, digit 3, the authors' class-sorted D): α = 10 keeps
    the class (imp_D inflated by Df's single-class batches), while `auto` and `search` forget it
    (forget-test ≤ 5 %) with retain-test accuracy within 2 points (the issue's bounds). An `auto`
    against D = retain ∪ forget, or a search that ignored the retain budget, fails here. (LFSSD's auto
    forgets too but costs 2.1 points on these 141 retain-test images, 3 images: not asserted.)"""
    from ssd.metrics import accuracy, predict_logits

    model, s = trained

    def scores(m: nn.Module) -> tuple[float, float]:
        return (accuracy(predict_logits(m, s.forget_test), s.forget_test.targets),
                accuracy(predict_logits(m, s.retain_test), s.retain_test.targets))

    _, retain0 = scores(model)
    paper = scores(METHODS.get("ssd").fn(copy.deepcopy(model), s, SSDConfig(alpha=10.0, order="paper")))
    assert paper[0] > 50.0, f"α = 10 in paper order was expected to keep the class: {paper}"
    for mode in ("auto", "search"):
        forget, retain = scores(METHODS.get("ssd").fn(copy.deepcopy(model), s, SSDConfig(alpha=mode, order="paper")))
        stats = s.context["ssd_stats"]
        assert forget <= 5.0 and retain >= retain0 - 2.0, (mode, forget, retain, retain0, stats["alpha"])


def test_sweep_alpha_keywords_add_one_labelled_point(digits_ckpt: Path, tmp_path: Path) -> None:
    """`--alphas 10,auto`: the numeric point as before plus one `ssd@auto` row carrying the α it chose;
    a second run with the first's keys as done records nothing (resume covers keyword points)."""
    from ssd.experiment import RunSpec, Session
    from ssd.sweep import parse_floats, run_sweep

    assert parse_floats("10,auto", "--alphas", keywords=("auto", "search")) == [10.0, "auto"]
    with pytest.raises(UserError):
        parse_floats("10,auto", "--alphas")
    spec = RunSpec(task="full_class", net="ConvNet", dataset="Digits", weight_path=str(digits_ckpt), method="ssd",
                   forget_class="2", retain_eval_size=200)
    session = Session(tmp_path / "cache")
    rows = run_sweep(spec, alphas=[10.0, "auto"], methods=["ssd", "global_dampening"], baseline_alphas=[0.5],
                     session=session)
    auto = [r for r in rows if r["method"] == "ssd@auto"]
    assert len(auto) == 1 and auto[0]["sweep"]["alpha_mode"] == "auto" and auto[0]["variant_of"] == "ssd"
    assert auto[0]["sweep"]["alpha"] == auto[0]["method_stats"]["alpha"]
    plain = [r for r in rows if r["method"] == "ssd"]
    assert len(plain) == 1 and plain[0]["method_stats"] is None
    again = run_sweep(spec, alphas=[10.0, "auto"], methods=["ssd", "global_dampening"], baseline_alphas=[0.5],
                      session=session, done={r["run_key"] for r in rows})
    assert again == []
