"""aurora-bench: one entry point for sweeps, single runs, reports and the embedded demo."""
import argparse
import sys
from functools import partial
from pathlib import Path

from .config import load_config
from .executors.processes import devices_for, run_parallel
from .run import ddp
from .report import write_report
from .sweep import run_one, summary, sweep


def _common(p):
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config entries, e.g. data.root=/data/vtab-1k methods=[lora,aurora] seeds=[0,1,2]")
    p.add_argument("--quiet", action="store_true", help="no progress bars (for logs)")


def _executors(p):
    p.add_argument("--gpus", help="run in parallel, one worker process per GPU: 'all' or a list like 0,1")
    p.add_argument("--workers", type=int, help="run in parallel on N CPU worker processes; with --gpus, N workers "
                   "per GPU (small models leave a GPU idle between kernel launches; results record the sharing)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on a Ray cluster (ray.init(address=ADDRESS); a local instance without ADDRESS), "
                        "one GPU per run where the cluster has GPUs")
    p.add_argument("--slurm", metavar="PARTITION", help="submit runs as Slurm jobs through submitit, one GPU "
                   "each ('local': submitit's local executor, to try the path without a cluster)")
    p.add_argument("--slurm-opts", nargs="+", default=[], metavar="KEY=VALUE",
                   help="submitit parameters, e.g. timeout_min=240 slurm_account=lab mem_gb=64 gpus_per_node=1")


def _executor(args):
    if args.slurm:
        import yaml
        from .executors.slurm_jobs import run_slurm
        bad = [o for o in args.slurm_opts if "=" not in o]
        if bad:
            raise SystemExit(f"--slurm-opts {bad}: each must look like key=value, e.g. timeout_min=240")
        opts = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.slurm_opts)}
        return partial(run_slurm, partition=args.slurm, options=opts, quiet=args.quiet)
    if args.ray:
        from .executors.ray_tasks import run_ray
        return partial(run_ray, address=None if args.ray == "local" else args.ray, quiet=args.quiet)
    if args.gpus or args.workers:
        return partial(run_parallel, devices=devices_for(args.gpus, args.workers), quiet=args.quiet)
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="aurora-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sweep", help="every (task, method, seed) of a config; resumes where it stopped")
    p.add_argument("config")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--replace-changed", action="store_true", help="results made with another config (a changed "
                   "rate, say) are moved to <output>/replaced/runs/ and their runs made again")
    p.add_argument("--no-report", action="store_true")
    _executors(p)
    _common(p)
    p = sub.add_parser("tune", help="choose each method's learning rate on the validation split (tune: in the config)")
    p.add_argument("config")
    p.add_argument("--write", metavar="YAML", help="also write the chosen `lrs:` here (a file a config can include)")
    _executors(p)
    _common(p)
    p = sub.add_parser("run", help="one (task, method, seed) of a config")
    p.add_argument("config")
    p.add_argument("--task", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replace-changed", action="store_true", help="a result made with another config is moved to "
                   "<output>/replaced/runs/ once this run's result is written")
    _common(p)
    p = sub.add_parser("report", help="tables and the Pareto plot from a results folder")
    p.add_argument("results_dir")
    p.add_argument("--lora", default="lora", help="method variant used as the LoRA reference")
    p.add_argument("--full", default="full", help="method variant used as the full fine-tuning reference")
    p = sub.add_parser("demo", help="the embedded default: digits, a tiny ViT, full / linear / lora / aurora, on CPU")
    _common(p)
    args = parser.parse_args(argv)

    if args.command == "report":
        print(write_report(args.results_dir, args.lora, args.full).read_text())
        return 0
    if args.command == "demo":
        from .demo import load_demo_config, pretrain_backbone
        cfg, pretrain = load_demo_config(args.set)
        cfg["model"]["file"] = str(pretrain_backbone(cfg, pretrain, args.quiet))
        counts = sweep(cfg, quiet=args.quiet)
    elif args.command == "tune":
        return _tune(args)
    else:
        cfg = load_config(args.config, args.set)
        if args.command == "run":
            result = run_one(cfg, args.task, args.method, args.seed, args.quiet, args.replace_changed)
            if ddp.is_main():
                print(f"{result['status']}: " + (f"accuracy {result['accuracy']:.2f}%" if result["status"] == "ok"
                                                  else result["error"]))
            ddp.finish()
            return 0 if result["status"] == "ok" else 1
        counts = sweep(cfg, quiet=args.quiet, retry_failed=args.retry_failed, executor=_executor(args),
                       replace_changed=args.replace_changed)
        if args.no_report:
            print(counts)
            return 0 if not counts["failed"] else 1
    print(summary(counts, cfg["output"]))
    if counts["ok"] + counts["skipped"] - counts["failed_before"]:  # some finished result to report
        print(write_report(cfg["output"]).read_text())
        print(f"TensorBoard: tensorboard --logdir {cfg['output']}/tb")
    return 0 if not counts["failed"] + counts["failed_before"] else 1


def _tune(args) -> int:
    from .tune import choose, tuning_config, write_lrs
    cfg = load_config(args.config, args.set)
    tuned = tuning_config(cfg)
    counts = sweep(tuned, quiet=args.quiet, executor=_executor(args))
    print(f"tuning runs: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} already done")
    write_report(tuned["output"])
    chosen = choose(tuned, tuned["output"])
    record = Path(tuned["output"]) / f"lrs-{cfg['name']}.yaml"  # one per config: tunes can share a folder
    for path in [record] + ([args.write] if args.write else []):
        print(f"wrote {write_lrs(chosen, tuned, path)}")
    print(record.read_text())
    return 0  # a rate whose run failed (a NaN loss at a high rate) has lost; the choice stands on the rest


if __name__ == "__main__":
    sys.exit(main())
