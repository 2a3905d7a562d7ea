"""One VTAB-1k-sized task end to end, our runner against the conventional pipeline, in one process.

    python -m aurora_bench.perf.e2e_task --out results/e2e            # ViT-B/16, 1,000 x 100 epochs, 10,000 test

Ours: `train_run` with AuroRA (r=2, q/v) on the runner's default path (train.compile auto: regional compile
on CUDA, its cache under --data, so the first invocation compiles cold and a second warm; the record says
which), from JPEGs: the run decodes both splits into the decode cache, emptied of them first (its
`decode_seconds`, part of the end-to-end time), and holds them whole on the GPU. Conventional: timm + peft
LoRA (r=8 on qkv) + torchvision `ImageFolder` and a `DataLoader` decoding the JPEGs every epoch. Both: batch
64, AdamW, bf16 autocast, the same images (generated, 224 px JPEGs), final test accuracy once at the end.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import load_config, resolve_run
from ..run import train_run
from ..run.compiling import add_compile_option
from ..run.inputs import cache_files
from ..run.record import device_name, git_commit, versions
from ..store import write_json
from .vtab_synthetic import smooth_image


def make_task(root: Path, n_train: int, n_test: int, num_classes: int = 10, size: int = 224) -> None:
    """Both layouts over the same JPEGs: NOAH's (ours) and ImageFolder's (conventional, via symlinks)."""
    if (root / "done").exists():
        return
    rng = np.random.default_rng(0)
    for split, n in (("train800val200", n_train), ("test", n_test)):
        lines = []
        for i in range(n):
            label = i % num_classes
            img = smooth_image(rng, size)
            rel = f"images/{split}/{i:06d}.jpg"
            (root / "task" / rel).parent.mkdir(parents=True, exist_ok=True)
            img.save(root / "task" / rel, quality=90)
            link = root / "folder" / split / f"c{label:02d}" / f"{i:06d}.jpg"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((root / "task" / rel).resolve())
            lines.append(f"{rel} {label}")
        (root / "task" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (root / "task" / "classes.txt").write_text("\n".join(f"c{i:02d}" for i in range(num_classes)) + "\n")
    (root / "done").touch()


def ours(root: Path, model: str, epochs: int, compile_model, cache: Path, eval_batch_size=None) -> dict:
    cfg = load_config({"tasks": ["task"], "methods": ["aurora"], "output": str(root / "out"),
                       "model": {"name": model, "pretrained": False, "image_size": 224},
                       "data": {"root": str(root), "cache_dir": str(cache)},
                       "train": {"epochs": epochs, "batch_size": 64, "eval_every": epochs, "compile": compile_model,
                                 **({"eval_batch_size": eval_batch_size} if eval_batch_size else {})},
                       "method_overrides": {"aurora": {"config": {"r": 2, "alpha": 4, "targets": "qv"}}}})
    run = resolve_run(cfg, "task", "aurora", 0)
    for entry in cache_files(run):  # a first run's decode, every invocation (the compile cache stays)
        entry.unlink(missing_ok=True)
    start = time.perf_counter()
    result = train_run(run, quiet=True)
    timing = result["timing"]
    return {"seconds": time.perf_counter() - start, "decode_seconds": timing["data_load_seconds"],
            "data_cache": timing["data_cache"], "accuracy": result["accuracy"],
            "train_img_per_s": result["train_img_per_s"], "train_seconds": result["train_seconds"],
            "first_epoch_seconds": result["curve"][0]["seconds"], "cuda_graphs": result["cuda_graphs"],
            "aurora_sigma": result["aurora_sigma"], "compile": result["compile"],
            "eval_img_per_s": result["eval_img_per_s"], "eval_batch_size": run["train"]["eval_batch_size"]}


def conventional(root: Path, model: str, epochs: int, workers: int) -> dict:
    import peft
    import timm
    from torchvision import datasets, transforms

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    net = timm.create_model(model, pretrained=False, num_classes=10)
    net = peft.get_peft_model(net, peft.LoraConfig(r=8, lora_alpha=8, target_modules=["qkv"],
                                                   modules_to_save=["head"])).to(device)
    cfg = net.base_model.model.pretrained_cfg
    tf = transforms.Compose([transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BICUBIC),
                             transforms.ToTensor(), transforms.Normalize(cfg["mean"], cfg["std"])])
    train = datasets.ImageFolder(str(root / "folder" / "train800val200"), tf)
    test = datasets.ImageFolder(str(root / "folder" / "test"), tf)
    kw = dict(batch_size=64, num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    train_loader = torch.utils.data.DataLoader(train, shuffle=True, **kw)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4)
    steps = epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    bf16 = device.type == "cuda"
    for _ in range(epochs):
        net.train()
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(test, **kw):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                correct += (net(x.to(device)).argmax(-1).cpu() == y).sum().item()
    return {"seconds": time.perf_counter() - start, "accuracy": 100.0 * correct / len(test)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers of the conventional pipeline")
    add_compile_option(p, "train.compile for our model (default auto, the runner's: regional on CUDA); its kernels "
                          "replayed in the CUDA graphs, its artifacts cached under --data's cache (a second "
                          "invocation compiles warm)", default="auto")
    p.add_argument("--eval-batch-size", type=int, default=None, help="train.eval_batch_size (default: the config's)")
    p.add_argument("--data", default="/tmp/aurora_e2e")
    p.add_argument("--out", default="results/e2e")
    args = p.parse_args(argv)
    root = Path(args.data)
    make_task(root, args.n_train, args.n_test)
    a = ours(root, args.model, args.epochs, args.compile, root / "cache", args.eval_batch_size)
    b = conventional(root, args.model, args.epochs, args.workers)
    res = {"device": device_name(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
           "model": args.model, "n_train": args.n_train, "n_test": args.n_test, "epochs": args.epochs,
           "compile": args.compile, "ours_aurora": a, "conventional_peft_lora": b,
           "speedup": b["seconds"] / a["seconds"], "versions": versions(), "git": git_commit(),
           "cpu_count": os.cpu_count()}
    write_json(Path(args.out) / "e2e.json", res)
    print(f"ours (AuroRA, decode included: {a['decode_seconds']:.1f} s): {a['seconds']:.1f} s; "
          f"conventional (peft LoRA, ImageFolder + DataLoader x{args.workers}): {b['seconds']:.1f} s; "
          f"speed-up {res['speedup']:.2f}x")


if __name__ == "__main__":
    main()
