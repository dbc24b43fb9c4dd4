"""The implementation shared by the three forgetting mains (full class, sub-class, random).

The mains stay thin: each holds its task name and its per-model α/λ table, and calls
:func:`run_task_main`. The authors' single-dash flags work verbatim.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeGuard

from ssd.errors import UserError

SSDParams = dict[str, tuple[float | str, float]]  # net → (alpha or "auto"/"search", lambda)
ALPHA_METHODS = ("ssd", "lfssd", "ssd_tuning", "lfssd_tuning")
DEFAULT_RESULTS = {"full_class": "results/full_class.jsonl", "sub_class": "results/sub_class.jsonl",
                   "random": "results/random.jsonl"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps description/epilog layout and appends "(default: X)" to options with a real default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("%(default)" in text or "default:" in text or action.default in (None, False, [], argparse.SUPPRESS)
                or not action.option_strings):
            return text
        if isinstance(action.default, (list, tuple)):  # list flags: shown as typed, 1,2,5
            return text + " (default: " + ",".join(map(str, action.default)).replace("%", "%%") + ")"
        return text + " (default: %(default)s)"


# torch's CPU threads per run when neither --threads nor a suite's `threads` says (docs/measurements.md,
# "Threads": on an idle 2-core machine two threads were 1.4x faster, on a loaded one 10-19x slower).
DEFAULT_THREADS = 1


def whole_number(value: object, low: int = 1) -> TypeGuard[int]:
    """A whole number ≥ `low`: an int, not a bool (the mains' --threads, a suite's sizes)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_threads(value: object, where: str = "--threads") -> int:
    """A thread count: a whole number ≥ 1 (one line otherwise)."""
    if not whole_number(value, 1):
        raise UserError(f"{where} must be a whole number ≥ 1 (torch CPU threads per run), got {value!r}")
    return value


def threads_arg(text: str) -> int:
    """argparse type for --threads."""
    try:
        return check_threads(int(text))
    except (ValueError, UserError):
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None


def add_backend_flags(p: argparse.ArgumentParser) -> None:
    """--backend, --ray-address, --cpus-per-run, --gpus-per-run (ssd.backends.add_backend_args)."""
    from ssd.names import BACKEND_NAMES

    p.add_argument("--backend", choices=BACKEND_NAMES, default="serial",
                   help="where runs execute: serial (this process) or ray (Ray tasks; see README 'Grids on Ray')")
    p.add_argument("--ray-address", default=None,
                   help="an existing Ray cluster (e.g. auto, HOST:6379, ray://HOST:10001); default: $RAY_ADDRESS, "
                        "else a local Ray started for this run")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs each run asks for")
    p.add_argument("--gpus-per-run", type=float, default=1.0,
                   help="ray: GPUs each CUDA run asks for (0.5 puts two runs on a GPU)")


class OneLineParser(argparse.ArgumentParser):
    """A flag error is one line and exit 2, like every other refusal (no usage dump; --help has it)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def split_list(values: str | Sequence[str]) -> list[str]:
    """A list flag's items: `1,2,5`, `1 2 5` (nargs="+") or a mix; every script accepts both forms."""
    parts = [values] if isinstance(values, str) else list(values)
    return [v for part in parts for v in part.replace(",", " ").split()]


EXAMPLES = {
    "full_class": "python forget_full_class_main.py -net ConvNet -weight_path checkpoints/ConvNet-Digits-seed0/best.pt "
                  "-dataset Digits -method ssd -forget_class 2 --logger none",
    "sub_class": "python forget_class_main.py -net ConvNet -weight_path checkpoints/ConvNet-DigitsCoarse-seed0/best.pt "
                 "-dataset DigitsCoarse -method ssd -forget_class 2 --logger none",
    "random": "python forget_random_main.py -net ConvNet -weight_path checkpoints/ConvNet-Digits-seed0/best.pt "
              "-dataset Digits -method ssd --n-forget 100 --logger none",
}


def build_parser(task: str) -> argparse.ArgumentParser:
    what = {"full_class": "forget one whole class", "sub_class": "forget one fine class inside its coarse class",
            "random": "forget N random training samples"}[task]
    p = OneLineParser(
        description=f"{task.replace('_', '-')} forgetting: {what}; prints the metrics and appends one result row.",
        epilog=f"example (after ./MAIN_run_experiments.sh --suite quick has made the Digits checkpoints):\n  "
               f"{EXAMPLES[task]}", formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("-net", required=True, help="model name (ResNet18, ViT, SmallViT, ConvNet)")
    p.add_argument("-weight_path", required=True, help="checkpoint from pretrain_model.py (or the authors' .pth)")
    p.add_argument("-dataset", required=True, help="dataset the checkpoint was trained on")
    p.add_argument("-classes", type=int, default=None, help="number of classes (checked)")
    p.add_argument("-gpu", action="store_true", help="run on cuda (same as --device cuda)")
    p.add_argument("-b", type=int, default=None, help="batch size for every method (default: each method's own)")
    p.add_argument("-warm", type=int, default=None, help="accepted for the authors' scripts; unused")
    p.add_argument("-lr", type=float, default=None, help="accepted for the authors' scripts; unused")
    from ssd.names import METHOD_ALIASES, method_names  # no torch: --help stays fast

    p.add_argument("-method", required=True, help="unlearning method: " + ", ".join(method_names())
                   + " (the authors' " + ", ".join(METHOD_ALIASES) + " work too; settings: scripts/methods.py)")
    # not offered to the random main (hidden there, so the authors' scripts that pass it get the one-line
    # refusal "the random task forgets random samples, not a class" rather than an argparse usage dump)
    p.add_argument("-forget_class", default=None, required=task != "random",
                   help=argparse.SUPPRESS if task == "random" else "class to forget, by name or index"
                       + (" (a fine class)" if task == "sub_class" else ""))
    p.add_argument("-epochs", type=int, default=None, help="epochs for methods that train (default: theirs)")
    p.add_argument("-seed", type=int, default=0, help="seed of the forget/retain split and the method")
    if task == "random":
        p.add_argument("--n-forget", type=int, default=100, help="number of training samples to forget")
    p.add_argument("--data-root", default=None, help="data folder (default: $SSD_DATA_ROOT or ./data)")
    p.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    p.add_argument("--alpha", type=alpha_value, default=None,
                   help="SSD selection weighting α: a number, 'auto' (ASSD's rule) or 'search' (held-out grid) "
                        "(default: the SSD_PARAMS table at the top of this main)")
    p.add_argument("--lambda", "--lam", dest="lam", metavar="LAMBDA", type=float, default=None,
                   help="SSD dampening constant λ (default: the SSD_PARAMS table)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any method setting, e.g. --set mode=sample --set order=paper")
    p.add_argument("--protocol", choices=("ours", "authors"), default=None,
                   help="data order and batch sizes: ours (default) or the method's reference code's")
    p.add_argument("--pretrained", default=None, help="ViT: the ImageNet weights folder the checkpoint started "
                   "from (reference models start there; default: the one the checkpoint records)")
    p.add_argument("--results", default=DEFAULT_RESULTS[task], help="JSON-lines file the run is appended to")
    p.add_argument("--logger", choices=("wandb", "none"), default="wandb",
                   help="wandb: offline unless an account is configured (files under the results file's folder, "
                        "wandb/), quiet unless WANDB_SILENT=false")
    p.add_argument("--device", default=None, help="torch device (cpu, cuda, cuda:1)")
    add_precision_flags(p)
    p.add_argument("--retain-eval-size", type=int, default=5000, help="retain-train samples scored")
    p.add_argument("--cache-dir", default="cache", help="cached importances and references")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="progress bars for the method and the audit (--no-progress: none)")
    p.add_argument("--threads", type=threads_arg, default=None, metavar="N",
                   help="torch CPU threads (default: 1, fastest on a shared 2-core machine; see README)")
    p.add_argument("--ulira", type=int, default=0, metavar="K",
                   help="U-LiRA privacy audit with K shadow models (even, >= 4; 0 = off); class tasks: "
                        "the shadows unlearn the class (docs/privacy.md)")
    p.add_argument("--ulira-set", action="append", default=[], metavar="KEY=VALUE",
                   help="U-LiRA setting, e.g. --ulira-set pool=2000 --ulira-set epochs=10 (ssd/privacy/audit.py)")
    return p


def add_precision_flags(p: argparse.ArgumentParser) -> None:
    """--precision and --channels-last (the mains, pretrain_model.py; ssd/precision.py)."""
    from ssd.names import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="fp32, tf32 (CUDA tensor cores) or bf16 (autocast for training and evaluation; SSD's "
                        "importances stay fp32) (default: tf32 on CUDA, fp32 elsewhere; docs/precision.md)")
    p.add_argument("--channels-last", action="store_true",
                   help="conv nets in channels_last memory format (CUDA only; ignored elsewhere)")


def alpha_value(text: str) -> float | str:
    """--alpha: a number ≥ 0 or one of the keywords "auto" / "search" (docs/alpha.md)."""
    from ssd.methods.registry import ALPHA_WORDS

    if text in ALPHA_WORDS:
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'auto' or 'search', got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"alpha must be ≥ 0, got {text!r}")
    return value


def parse_value(raw: str) -> Any:
    """A setting's value from the command line: a Python literal when it parses as one, true /
    false in any case as booleans, else the string (the setting's own check refuses a string
    where it wants a number or a boolean: `fix_variance=maybe`). Every `KEY=VALUE` flag uses this."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        word = raw.strip().lower()
        return {"true": True, "false": False}.get(word, raw)


def parse_sets(items: Sequence[str], flag: str = "--set") -> dict[str, Any]:
    """`KEY=VALUE` pairs (`flag` names the option in the refusal); values as `parse_value`."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"{flag} expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        out[key.strip()] = parse_value(raw)
    return out


def method_overrides(method: str, net: str, table: SSDParams, alpha: float | str | None, lam: float | None,
                     epochs: int | None, sets: dict[str, Any]) -> dict[str, Any]:
    """Resolve α/λ (flag > the main's per-model table) and -epochs into method settings."""
    import dataclasses

    from ssd.methods.registry import METHODS
    from ssd.names import METHOD_ALIASES

    name = METHOD_ALIASES.get(method, method)
    fields = {f.name for f in dataclasses.fields(METHODS.get(name).config)}
    out: dict[str, Any] = {}
    if name in ("ssd", "lfssd") and net in table:
        out["alpha"], out["lam"] = table[net]
    if alpha is not None:
        if "alpha" not in fields:
            raise UserError(f"method {name!r} has no alpha")
        out["alpha"] = alpha
    if lam is not None:
        if "lam" not in fields:
            raise UserError(f"method {name!r} has no lambda")
        out["lam"] = lam
    if epochs is not None and "epochs" in fields:
        out["epochs"] = epochs
    out.update(sets)
    return out


def run_task_main(task: str, table: SSDParams, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse a main's flags, check everything the run needs at once, run one method, print a
    readable summary and one JSON line, append the row, log to wandb."""
    import time

    args = build_parser(task).parse_args(argv)  # --help and flag errors before torch is imported
    from ssd.utils import code_version

    code_version()  # pinned before any work: the row names the code this process started with
    start = time.perf_counter()
    from datasets import dataset_info
    from ssd.experiment import RunSpec, Session, method_config, run_one, spec_key
    from ssd.results import append_row, done_keys, read_rows
    from ssd.run_summary import json_line, summary_lines
    from ssd.utils import check_writable, sha256_file

    info = dataset_info(args.dataset)
    if args.classes is not None and args.classes != info.num_classes:
        raise UserError(f"-classes {args.classes} does not match {args.dataset}, which has {info.num_classes} classes")
    device = check_needs(args, task)
    spec = RunSpec(
        task=task, net=args.net, dataset=args.dataset, weight_path=args.weight_path, method=args.method,
        forget_class=args.forget_class, n_forget=getattr(args, "n_forget", 100), seed=args.seed, device=device,
        batch_size=args.b, data_root=args.data_root, download=args.download,
        retain_eval_size=args.retain_eval_size, pretrained=args.pretrained,
        overrides=method_overrides(args.method, args.net, table, args.alpha, args.lam, args.epochs,
                                   {**({"protocol": args.protocol} if args.protocol else {}), **parse_sets(args.set)}),
        ulira=args.ulira, ulira_settings=parse_sets(args.ulira_set, "--ulira-set"),
        threads=args.threads or DEFAULT_THREADS, precision=args.precision, channels_last=args.channels_last,
    )
    if args.ulira_set and not args.ulira:
        raise UserError("--ulira-set sets the U-LiRA audit, which is off: add --ulira K (K shadow models)")
    if args.ulira:
        from ssd.privacy.settings import check_request

        check_request(spec)
    check_writable(args.results, "results (--results)")  # output locations first: no work lost at the end
    check_writable(args.cache_dir, "cache folder (--cache-dir)", folder=True)
    cfg = method_config(spec.method, spec)  # refuses nonsense settings before any work
    for note in cfg.notes():
        print(f"note: {note}", file=sys.stderr)
    key = spec_key(spec, cfg, sha256_file(spec.weight_path))
    if key in done_keys([args.results]):
        print(f"this run is already recorded in {args.results} (run_key {key}); nothing appended "
              "(delete that row to run it again)")
        return next(r for r in read_rows(args.results, quiet=True) if r.get("run_key") == key)
    session = Session(args.cache_dir)
    from ssd.heartbeat import heartbeat

    original: dict[str, float] = {}
    with heartbeat(f"{args.method}", enabled=args.progress):
        row = run_one(spec, session, progress=args.progress,
                      on_splits=lambda model, splits: original.update(original_accuracies(model, splits)))
    append_row(args.results, row)
    if args.logger == "wandb":
        from ssd.loggers import log_wandb

        cls = row["forget_class_name"] or "random"
        log_wandb(row, project=f"{args.net}_{args.dataset}_{task}_{cls}", name=row["method"],
                  directory=Path(args.results).parent)
    choice = (row.get("method_stats") or {}).get("alpha_select")
    if choice:
        from ssd.methods.alpha_select import describe

        print(describe(choice))
    source = ("--alpha/--lambda" if args.alpha is not None or args.lam is not None
              else f"SSD_PARAMS[{args.net!r}] in {Path(sys.argv[0]).name or 'the main'}")
    for line in summary_lines(row, original, alpha_source=source,
                              total_s=time.perf_counter() - start):
        print(line)
    print(json_line(row["metrics"], audited=bool(args.ulira)))
    where = f"appended to {args.results} (run_key {row['run_key']})"
    if args.logger == "wandb":
        where += f"; wandb run (offline unless logged in) under {Path(args.results).parent / 'wandb'}"
    print(where)
    return row


def original_accuracies(model: Any, splits: Any) -> dict[str, float]:
    """The unchanged model's accuracies on the run's own split (one prediction pass per set);
    run_one hands both over before its method runs, so the split is built once."""
    from ssd.metrics import accuracy, predict_logits

    return {key: accuracy(predict_logits(model, data), data.targets)
            for key, data in (("Df", splits.forget), ("DfTest", splits.forget_test), ("DrTest", splits.retain_test))
            if data is not None and len(data)}


def check_needs(args: argparse.Namespace, task: str) -> str:
    """The device, the data and the checkpoint checked together: every missing piece is listed
    at once (one MISSING line each, then one error line), not one per attempt. Returns the device."""
    from ssd.suite.preflight import checkpoint_need, data_need, device_need

    name = args.device or ("cuda" if args.gpu else "cpu")
    needs = [device_need(name, net=args.net, dataset=args.dataset), data_need(args.dataset, args.data_root,
                                                                                download=args.download),
             checkpoint_need(args.weight_path, args.net, args.dataset, name)]
    missing = [line for ok, line in needs if not ok]
    for line in missing:
        print(f"MISSING {line}", file=sys.stderr)
    if len(missing) == 1:
        raise UserError(missing[0])
    if missing:
        raise UserError(f"{len(missing)} things this run needs are missing (the MISSING lines above)")
    from ssd.utils import resolve_device

    return str(resolve_device(args.device, gpu=args.gpu))
