"""Where a training step's (or with --eval, a no-grad forward's) time goes: torch.profiler over a few steps
of one method, top ops by GPU time.

    python -m aurora_bench.perf.profile_step --method aurora --targets qv --r 2 --batch 256 [--eval] [--compile [regional]]

With --compile the model is torch.compile'd first and the graph breaks dynamo met are printed (a break
splits the compiled graph, and inductor cannot fuse across it).
"""
import argparse
import json

import timm
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import aurora_vision as av

from ..run.compiling import add_compile_option, compile_mode, for_training
from ..run.model import param_groups


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--model-kwargs", type=json.loads, default={}, help="more timm.create_model keywords, as JSON")
    p.add_argument("--method", default="aurora")
    p.add_argument("--r", type=int, default=2)
    p.add_argument("--targets", default="qv")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("--eval", action="store_true", help="profile the no-grad forward (eval) instead")
    add_compile_option(p, "torch.compile the model as train.compile does: whole (--compile alone) or regional")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = {"r": args.r, "targets": args.targets} if args.method in ("lora", "aurora") else {}
    model = av.apply(timm.create_model(args.model, num_classes=100, **args.model_kwargs), args.method, cfg).to(device)
    opt = torch.optim.AdamW(param_groups(model, 1e-4, 1e-4, 1e-4))
    args.compile = compile_mode(args.compile, device.type)  # auto: what the runner would do here
    net = for_training(model, model, args.compile)
    size = args.model_kwargs.get("img_size", 224)
    x = torch.randn(args.batch, 3, size, size, device=device)
    y = torch.randint(0, 100, (args.batch,), device=device)

    def train_step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def eval_step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            net(x)

    step = eval_step if args.eval else train_step
    model.train(not args.eval)

    for _ in range(5):
        step()
    if args.compile != "none":
        from torch._dynamo.utils import counters
        print(f"graph breaks: {sum(counters['graph_break'].values())} {dict(counters['graph_break'])}; "
              f"unique graphs: {counters['stats']['unique_graphs']}")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"{args.method} r={args.r} {args.targets} batch {args.batch}, {args.steps} {'eval' if args.eval else 'train'} "
          f"steps{'' if args.compile == 'none' else ', compiled: ' + args.compile}")
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
