"""Test helpers: tiny timm models of every supported family (built without weights), generated data in the
real on-disk layouts (no network, no ../shared), and a tiny sweep config over them."""
import json
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

import aurora_vision  # noqa: F401  (enables the aurora= keyword)
from aurora_bench.config import load_config


def write_image(path: Path, seed: int, size=(12, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(path)


def vtab_task(root: Path, task: str = "mytask", num_classes: int = 3, per_split=None, size=(12, 12)) -> Path:
    """NOAH's layout: <root>/<task>/{train800,val200,train800val200,test}.txt + images/<split>/NNNNNN.jpg."""
    per_split = per_split or {"train800": 12, "val200": 6, "test": 9}
    task_dir = root / task
    seed = 0
    lines = {}
    for split, n in per_split.items():
        lines[split] = []
        for i in range(n):
            rel = f"images/{split}/{i:06d}.jpg"
            write_image(task_dir / rel, seed, size)
            lines[split].append(f"{rel} {i % num_classes}")
            seed += 1
    lines["train800val200"] = lines.get("train800", []) + lines.get("val200", [])
    for split, ls in lines.items():
        (task_dir / f"{split}.txt").write_text("\n".join(ls) + "\n")
    (task_dir / "classes.txt").write_text("\n".join(f"class{i}" for i in range(num_classes)) + "\n")
    return task_dir


def fgvc_task(root: Path, task: str, image_dir: str, num_classes: int = 3, n: int = 6) -> Path:
    """VPT's layout: <root>/<task>/{train,val,test}.json mapping relative image path -> label (1-based ids)."""
    task_dir = root / task
    seed = 100
    for split in ("train", "val", "test"):
        entries = {}
        for i in range(n):
            rel = f"{i % num_classes:03d}.class/{split}_{i}.jpg"
            write_image(task_dir / image_dir / rel, seed)
            entries[rel] = (i % num_classes) + 1
            seed += 1
        (task_dir / f"{split}.json").write_text(json.dumps(entries))
    return task_dir


def image_folder_task(root: Path, task: str = "own", classes=("cat", "dog"), n: int = 3) -> Path:
    for split in ("train", "test"):
        for c in classes:
            for i in range(n):
                write_image(root / task / split / c / f"{i}.png", hash((split, c, i)) % 1000)
    return root / task


def write_gray16(path: Path, values: np.ndarray) -> None:
    """A 16-bit grayscale PNG (Pillow mode 'I;16') holding `values` (uint16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


# tiny timm models

TINY = {
    "vit": ("vit_tiny_patch16_224", dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)),
    "deit_distilled": ("deit_tiny_distilled_patch16_224",
                       dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)),
    "dinov2": ("vit_small_patch14_dinov2", dict(img_size=28, patch_size=7, depth=2, embed_dim=32, num_heads=2)),
    "swin": ("swin_tiny_patch4_window7_224",
             dict(img_size=32, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2))),
    "swinv2": ("swinv2_tiny_window8_256",
               dict(img_size=32, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2))),
}
IMG = {"dinov2": 28}


def tiny_model(family: str = "vit", num_classes: int = 5, **kwargs):
    name, arch = TINY[family]
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **arch, **kwargs)


def tiny_input(family: str = "vit", batch: int = 2, seed: int = 1):
    size = IMG.get(family, 32)
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# a tiny sweep config over a generated task

TINY_MODEL = {"name": "vit_tiny_patch16_224", "pretrained": False, "image_size": 16,
              "kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 16, "num_heads": 2}}


def tiny_cfg(tmp_path, **over):
    vtab_task(tmp_path / "data", "mytask", num_classes=3)
    cfg = load_config({"name": "t", "tasks": ["mytask"], "methods": ["linear", "aurora"], "seeds": [0],
                       "output": str(tmp_path / "out"), "model": TINY_MODEL,
                       "data": {"root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")},
                       "train": {"epochs": 2, "batch_size": 4, "warmup_epochs": 1, "eval_every": 1, "device": "cpu"}})
    for k, v in over.items():
        cfg[k] = v
    return cfg
