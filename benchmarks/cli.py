"""aurora-bench: one entry point for sweeps, single runs, learning-rate tuning, reports, the embedded demo
and `list` (what a config runs)."""
import argparse
import sys
import traceback
from functools import partial
from pathlib import Path

from . import store
from .config import expand, load_config, require_ready, require_task, resolve_run, select_run
from .errors import UserError

# torch, torchvision, timm and scipy are imported where they are used (the config's method checks, the sweep, the
# report): `--help` and a mistake in the command line or in the config's keys and values answer at once

EXIT_STATUS = ("Exit status: 0 every run ok, 1 some run failed, 2 a mistake in the command, config, data or "
               "results folder (printed as one line; -v shows the traceback).")
EPILOG = "Options and the config file may come in any order. " + EXIT_STATUS
SWEEP_SET_EXAMPLE = "data.root=/data/vtab-1k methods=[lora,aurora] seeds=[0,1,2]"
DEMO_SET_EXAMPLE = "seeds=[0] train.epochs=10 train.warmup_epochs=1 pretrain.epochs=20 output=results/demo-short"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def seed_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be a whole number in [0, 2**32), got {text!r}")
    return value


def _config_arg(p):
    # optional to argparse so that `--set a=1 CONFIG` parses (--set's values run up to the next option);
    # `_config_from_values` finds a config that a list option took and insists on one
    p.add_argument("config", nargs="?", metavar="CONFIG",
                   help="sweep config (YAML), e.g. configs/vtab1k.yaml; before or after the options")


def _verbose(p):
    # SUPPRESS: `aurora-bench -v run ...` sets it before the command; the command's own default must not undo it
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an error, not only its one-line message")


def _common(p, example: str = SWEEP_SET_EXAMPLE):
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help=f"override config entries (values are YAML), several after one --set or one per --set, "
                        f"e.g. {example}")
    p.add_argument("--quiet", action="store_true", help="no progress bars or status lines (for logs)")
    _verbose(p)


def _dry_run(p):
    p.add_argument("--dry-run", action="store_true",
                   help="print the runs it would make and their count; make nothing (no data needed)")


def _executors(p):
    p.add_argument("--gpus", help="run in parallel, one worker process per GPU: 'all' or a list like 0,1")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="run in parallel on N CPU worker processes; with --gpus, N workers per GPU (small models "
                        "leave a GPU idle between kernel launches; results record the sharing)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on a Ray cluster (ray.init(address=ADDRESS); a local instance without ADDRESS), "
                        "one GPU per run where the cluster has GPUs")
    p.add_argument("--slurm", metavar="PARTITION", help="submit runs as Slurm jobs through submitit, one GPU "
                   "each ('local': submitit's local executor, to try the path without a cluster)")
    p.add_argument("--slurm-opts", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="submitit parameters, e.g. timeout_min=240 slurm_account=lab mem_gb=64 gpus_per_node=1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aurora-bench", description=__doc__, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the traceback of an error, not only its one-line message")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("sweep", epilog=EPILOG, help="every (task, method, seed) of a config; resumes where it stopped")
    _config_arg(p)
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--replace-changed", action="store_true", help="results made with another config (a changed "
                   "rate, say) are moved to <output>/replaced/runs/ and their runs made again")
    p.add_argument("--no-report", action="store_true", help="print the run counts only, no report.md / tables")
    _dry_run(p)
    _executors(p)
    _common(p)
    p = sub.add_parser("tune", epilog=EPILOG,
                       help="choose each method's learning rate on the validation split (tune: in the config)")
    _config_arg(p)
    p.add_argument("--write", metavar="YAML", help="also write the chosen `lrs:` here (a file a config can include)")
    _dry_run(p)
    _executors(p)
    _common(p)
    p = sub.add_parser("run", epilog=EPILOG, help="one (task, method, seed) of a config")
    _config_arg(p)
    p.add_argument("--task", required=True, help="a task of the config's `tasks`")
    p.add_argument("--method", required=True,
                   help="a variant of the config (methods, method_overrides) or a registered method")
    p.add_argument("--seed", type=seed_int, default=0, help="the run's seed (default 0)")
    p.add_argument("--replace-changed", action="store_true", help="a result made with another config is moved to "
                   "<output>/replaced/runs/ once this run's result is written")
    _common(p)
    p = sub.add_parser("list", epilog=EPILOG, help="what a config runs: tasks, methods (variant -> method, config, "
                       "rate), seeds, recipe, the data source and its options")
    _config_arg(p)
    _common(p)
    p = sub.add_parser("report", epilog=EXIT_STATUS, help="tables and the Pareto plot from a results folder")
    p.add_argument("results_dir", help="a sweep's output folder (holds runs/*.json)")
    p.add_argument("--lora", default="lora", help="method variant used as the LoRA reference")
    p.add_argument("--full", default="full", help="method variant used as the full fine-tuning reference")
    p.add_argument("--baseline", action="append", default=[], metavar="NAME",
                   help="a further reference every method is compared with (repeat for several)")
    _verbose(p)
    demo = ("the embedded default: scikit-learn's digits, a tiny ViT pre-trained on digits 0-4, then full / linear / "
            "lora / aurora adapting it to 5-9; on CPU, no network, no data to download")
    p = sub.add_parser("demo", epilog=EXIT_STATUS, help=demo, description=demo + ". --set pretrain.KEY=VALUE sets "
                       "the pretraining stage (classes, train_size, epochs, lr).")
    _common(p, DEMO_SET_EXAMPLE)
    for p in sub.choices.values():  # argparse shows the optional-to-it CONFIG as [CONFIG]; it is required
        p.usage = p.format_usage().partition("usage: ")[2].replace("[CONFIG]", "CONFIG").rstrip()
    parser.commands = sub.choices  # for errors found after parsing, with the command's own usage line
    return parser


def _config_from_values(parser, args) -> None:
    """A list option (--set, --slurm-opts, --ray's optional ADDRESS) takes the words after it, the config file
    too when it comes last: a word without '=' is no KEY=VALUE, so it is the config."""
    if not hasattr(args, "set"):
        return  # report: a folder, no config
    strays = [v for v in args.set if "=" not in v]
    args.set = [v for v in args.set if "=" in v]
    if hasattr(args, "slurm_opts"):
        strays += [v for v in args.slurm_opts if "=" not in v]
        args.slurm_opts = [v for v in args.slurm_opts if "=" in v]
    if getattr(args, "ray", None) and args.config is None and Path(args.ray).suffix in (".yaml", ".yml"):
        strays, args.ray = strays + [args.ray], "local"
    if not hasattr(args, "config"):
        if strays:
            parser.error(f"--set takes KEY=VALUE entries, got {', '.join(map(repr, strays))}")
        return
    if args.config is None and len(strays) == 1:
        args.config = strays.pop()
    if strays:
        parser.error(f"unexpected argument(s) {', '.join(map(repr, strays))}: --set takes KEY=VALUE entries"
                     + (f" and the config is {args.config!r}" if args.config else ""))
    if args.config is None:
        parser.error(f"a config file is required, e.g. aurora-bench {args.command} configs/vtab1k.yaml")


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    _config_from_values(parser.commands[args.command], args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as e:  # a mistake in the input: its message says what to fix, a traceback would bury it
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"aurora-bench: error: {e}", file=sys.stderr)
        return 2


def _executor(args):
    from .executors.processes import devices_for, run_parallel
    if args.slurm:
        import yaml
        from .executors.slurm_jobs import run_slurm
        opts = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.slurm_opts)}
        return partial(run_slurm, partition=args.slurm, options=opts, quiet=args.quiet)
    if args.ray:
        from .executors.ray_tasks import run_ray
        return partial(run_ray, address=None if args.ray == "local" else args.ray, quiet=args.quiet)
    if args.gpus or args.workers:
        return partial(run_parallel, devices=devices_for(args.gpus, args.workers), quiet=args.quiet)
    return None


def _print_outcome(cfg: dict, counts: dict) -> int:
    from .report import write_report
    from .sweep import summary
    print(summary(counts, cfg["output"]))
    if counts["ok"] + counts["skipped"] - counts["failed_before"]:  # some finished result to report
        print(write_report(cfg["output"]).read_text())
        print(f"TensorBoard: tensorboard --logdir {cfg['output']}/tb  (Custom Scalars tab: each method's mean and "
              "min-max band over seeds)")
    return 0 if not counts["failed"] + counts["failed_before"] else 1


def _require_data(cfg: dict, runs: list, retry_failed: bool = False, replace_changed: bool = False) -> None:
    """The data of each run the command would make (finished runs need none), checked once the config's keys and
    values are (load_config's `require`): a mistyped data root, task or split is refused before the library loads
    and before any run is made or recorded."""
    require_ready(cfg, store.to_make(cfg["output"], runs, retry_failed, replace_changed))


def _refusals(*checks) -> list:
    """What each check would refuse now, for a dry run to say."""
    out = []
    for check in checks:
        try:
            check()
        except UserError as e:
            out.append(str(e))
    return out


def _sweep(args) -> int:
    def ready(cfg):
        _require_data(cfg, expand(cfg), args.retry_failed, args.replace_changed)
    cfg = load_config(args.config, args.set, require=None if args.dry_run else ready)
    from .sweep import summary, sweep
    from .tuned_rates import require_tuned_rates
    if args.dry_run:
        from .dry_run import sweep_listing
        refusals = _refusals(partial(ready, cfg), partial(require_tuned_rates, cfg, args.config, expand(cfg)))
        print(sweep_listing(cfg, args.retry_failed, args.replace_changed, refusals))
        return 0
    require_tuned_rates(cfg, args.config, expand(cfg))  # before anything is written
    counts = sweep(cfg, quiet=args.quiet, retry_failed=args.retry_failed, executor=_executor(args),
                   replace_changed=args.replace_changed)
    if args.no_report:
        print(summary(counts, cfg["output"]))
        return 0 if not counts["failed"] + counts["failed_before"] else 1
    return _print_outcome(cfg, counts)


def _run(args) -> int:
    def ready(cfg):  # `run` makes a failed run again
        require_task(cfg, args.task)
        _require_data(cfg, [resolve_run(cfg, args.task, args.method, args.seed)], True, args.replace_changed)
    cfg = load_config(args.config, args.set, require=ready)
    run = select_run(cfg, args.task, args.method, args.seed)  # an unknown task or method is refused before any work
    from .run import ddp
    from .sweep import run_one
    from .tuned_rates import require_tuned_rates
    require_tuned_rates(cfg, args.config, [run])
    result = run_one(cfg, args.task, args.method, args.seed, args.quiet, args.replace_changed)
    if ddp.is_main():
        print(f"{result['status']}: " + (f"accuracy {result['accuracy']:.2f}%" if result["status"] == "ok"
                                          else result["error"]))
    ddp.finish()
    return 0 if result["status"] == "ok" else 1


def _tune(args) -> int:
    from .tune import rates_path, tune, tuning_config, write_lrs
    def ready(cfg):  # tune's sweeps retry no failed run
        tuned = tuning_config(cfg)
        _require_data(tuned, expand(tuned))
    cfg = load_config(args.config, args.set, require=None if args.dry_run else ready)
    from .report import write_report
    from .sweep import summary, sweep
    if args.dry_run:
        from .dry_run import tune_listing
        print(tune_listing(cfg, _refusals(partial(ready, cfg))))
        return 0

    def run_sweep(tuned):
        print("tuning " + summary(sweep(tuned, quiet=args.quiet, executor=_executor(args)), tuned["output"]))
    chosen = tune(cfg, run_sweep)
    tuned = chosen["tuned"]
    record = rates_path(cfg, tuned)
    for path in [record] + ([args.write] if args.write else []):
        print(f"wrote {write_lrs(chosen, tuned, path)}")
    write_report(tuned["output"])  # after the rates file: its tuning section reads it
    print(record.read_text())
    return 0  # a rate whose run failed (a NaN loss at a high rate) has lost; the choice stands on the rest


def _list(args) -> int:
    from .config.describe import describe
    print(describe(load_config(args.config, args.set)))
    return 0


def _report(args) -> int:
    from .report import write_report
    print(write_report(args.results_dir, args.lora, args.full, baselines=args.baseline).read_text())
    return 0


def _demo(args) -> int:
    from .demo import load_demo_config, pretrain_backbone
    from .sweep import sweep
    cfg, pretrain = load_demo_config(args.set)
    cfg["model"]["file"] = str(pretrain_backbone(cfg, pretrain, args.quiet))
    return _print_outcome(cfg, sweep(cfg, quiet=args.quiet))


COMMANDS = {"sweep": _sweep, "tune": _tune, "run": _run, "list": _list, "report": _report, "demo": _demo}

if __name__ == "__main__":
    sys.exit(main())
