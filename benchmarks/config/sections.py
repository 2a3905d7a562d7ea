"""Every key a sweep config may hold: its type, default, range and help. The `data:` section is declared by
the data sources (`aurora_bench.data.options_of`); checks.py checks what one key cannot say alone
(registered methods, warmup below epochs, a variant's method config)."""
import re

from ..data.tasks import SUITES
from ..schema import Option, at_least, list_of, positive

# The task tables (class counts, VTAB groups), and names for tasks no table knows: the demo's digits, and
# `custom` for your own folders (class counts from the data or data.num_classes).
KNOWN_SUITES = (*SUITES, "digits", "custom")
PRECISIONS = ("auto", "bf16", "fp32", "fp8")
# run/compiling.py; auto resolves per device (regional on CUDA, none elsewhere); true and false mean model and none
COMPILE_MODES = ("auto", "none", "regional", "regional-autotune", "model")


def _seed(v):
    return None if 0 <= v < 2**32 else "must be in [0, 2**32) (numpy's seed range)"


def file_name(v):
    """A name that becomes part of file names (the sweep's, its tasks', its variants'): one plain path component,
    so that nothing is written outside the results folder and every record lies where resume and report look
    (runs/*.json: not a hidden file)."""
    if v and not v.startswith(".") and not any(c in "/\\" or ord(c) < 32 for c in v):
        return None
    return "must be a plain name: not empty, no '/', '\\' or control characters, not starting with '.' (it names files)"


def _fraction(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _precision(v):
    return None if v in PRECISIONS else f"must be one of {', '.join(PRECISIONS)}"


def check_compile(v):
    if v in COMPILE_MODES or isinstance(v, bool):
        return None
    return f"must be one of {', '.join(COMPILE_MODES)}, or true (model) / false (none)"


def _device(v):
    if v == "auto" or re.fullmatch(r"cpu|cuda(:\d+)?", str(v)):
        return None  # the common names, without importing torch (seconds) to check a config
    import torch
    try:
        torch.device(v)
    except (RuntimeError, ValueError):
        return "must be 'auto' or a torch device such as cpu, cuda, cuda:1"
    return None


def _grids(v):
    for name, rates in v.items():
        if rates is None:
            continue  # no grid of its own (a 'default: null' drops the default grid)
        if not isinstance(rates, list) or not rates or \
                not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 for r in rates):
            return f"must map each variant to a non-empty list of rates > 0 ({name}: {rates!r} is not)"
    return None


SEEDS = list_of(int, item_check=_seed)


def _tasks(v):
    if not v:
        return "must list at least one task (tasks: [a, b] in the config, or --set tasks=[a,b])"
    return list_of(str, item_check=file_name)(v)

TOP = {
    "name": Option(str, "sweep", nullable=False, check=file_name, help="names the sweep's files in its output"),
    "suite": Option(str, "vtab", nullable=False, choices=KNOWN_SUITES,
                    help="task table for class counts and VTAB groups"),
    "tasks": Option(list, [], nullable=False, check=_tasks,
                    help="the tasks a sweep runs (names the data source finds)"),
    "methods": Option(list, ["full", "linear", "lora", "aurora"], nullable=False, check=list_of(str),
                      help="registered methods or variants named in method_overrides"),
    "seeds": Option(list, [0], nullable=False, check=SEEDS, help="one run per seed"),
    "tuning": Option(bool, False, nullable=False,
                     help="train on the tuning splits and evaluate on validation only"),
    "output": Option(str, "results", nullable=False, help="results folder"),
    "model": Option(dict, None, help="the timm model (model: keys)"),
    "data": Option(dict, None, help="the data source and its options (data: keys; see `aurora-bench list`)"),
    "train": Option(dict, None, help="the recipe (train: keys)"),
    "lrs": Option(dict, {}, nullable=False, help="variant or registered method -> learning rate (as "
                  "`aurora-bench tune` writes them); a variant without an entry takes its method's; below "
                  "task and variant overrides"),
    "lrs_tuned": Option(dict, {}, nullable=False,
                        help="written by `aurora-bench tune` beside lrs: per variant, what its rate was tuned for "
                             "(config, tasks, seeds, grid, a fingerprint of the tuning-relevant settings); "
                             "tune.require_rates checks it against the config"),
    "tune": Option(dict, None, help="learning-rate grids for `aurora-bench tune` (tune: keys)"),
    "method_overrides": Option(dict, {}, nullable=False,
                               help="variant -> {method, config, train, model, data}: what differs per method"),
    "task_overrides": Option(dict, {}, nullable=False, help="task -> {train, model, data}: what differs per task"),
}

MODEL = {
    "name": Option(str, "vit_base_patch16_224.orig_in21k", required=True, help="timm model name"),
    "pretrained": Option(bool, True, nullable=False, help="load timm's pretrained weights (from the hub)"),
    "file": Option(str, None, help="local weights file (.safetensors / .pth) loaded instead of the hub's; "
                   "works offline"),
    "image_size": Option(int, 224, nullable=False, check=at_least(1), help="input resolution (pixels)"),
    "kwargs": Option(dict, {}, nullable=False, help="more timm.create_model keywords (e.g. depth, embed_dim)"),
}

TRAIN = {
    "epochs": Option(int, 100, nullable=False, check=at_least(1), help="training epochs"),
    "batch_size": Option(int, 64, nullable=False, check=at_least(1), aliases=("bs",), help="training batch size"),
    "lr": Option(float, 1e-3, nullable=False, check=positive, aliases=("learning_rate", "base_lr"),
                 help="AdamW learning rate of everything but the head"),
    "head_lr": Option(float, None, check=positive, aliases=("lr_head", "head_learning_rate"),
                      help="the head's learning rate (null: lr)"),
    "weight_decay": Option(float, 1e-4, nullable=False, check=at_least(0), aliases=("wd",),
                           help="AdamW weight decay (not on biases, norms, tokens)"),
    "warmup_epochs": Option(int, 10, nullable=False, check=at_least(0), aliases=("warmup",),
                            help="linear warmup epochs, fewer than epochs"),
    "schedule": Option(str, "cosine", nullable=False, choices=("cosine", "linear"), help="decay after warmup"),
    "label_smoothing": Option(float, 0.0, nullable=False, check=_fraction, help="cross-entropy label smoothing"),
    "precision": Option(str, "auto", nullable=False, check=_precision, aliases=("amp", "dtype"),
                        help="auto (bf16 autocast on CUDA, fp32 elsewhere), bf16, fp32, or fp8: the frozen "
                        "linears' forward and input-gradient GEMMs in FP8 via torchao (pip install "
                        "aurora-vision[fp8]; CUDA compute capability >= 8.9; compiles the model), the rest bf16"),
    "eval_every": Option(int, 10, nullable=False, check=at_least(1), help="evaluate every N epochs (and the last)"),
    "eval_batch_size": Option(int, 256, nullable=False, check=at_least(1), help="evaluation batch size"),
    "device": Option(str, "auto", nullable=False, check=_device, help="auto (CUDA when there is one), cpu, cuda:N"),
    "compile": Option((bool, str), "auto", nullable=False, check=check_compile,
                      help="torch.compile: auto (regional on CUDA, none elsewhere; the record says which ran), none "
                      "(false), regional (each repeated transformer block compiled once and reused by the others; its "
                      "kernels cached in <data.cache_dir>/compile for later processes and sweep workers), "
                      "regional-autotune (regional, each GEMM shape timed against inductor's Triton templates, which "
                      "fuse the ops that follow; a slower cold compile) or model "
                      "(true: the whole model, tens of seconds per process)"),
    "deterministic": Option(bool, False, nullable=False,
                            help="deterministic algorithms: the same seed gives the same numbers, at some speed"),
    "calibrated_merge": Option(bool, False, nullable=False,
                               help="also evaluate the calibrated merge of adapters without an exact one (AuroRA)"),
}

TUNE = {
    "methods": Option(list, None, check=list_of(str), help="variants to tune (null: methods)"),
    "tasks": Option(list, None, check=list_of(str, item_check=file_name), help="tasks tuned on (null: tasks)"),
    "seeds": Option(list, [0], check=SEEDS, help="seeds of the tuning runs"),
    "lrs": Option(dict, {"default": [1e-3, 3e-3, 1e-2]}, nullable=False, check=_grids,
                  help="variant (or 'default') -> the rates tried"),
    "extend": Option(int, 2, nullable=False, check=at_least(0),
                     help="rates added past an edge of a variant's grid while its best rate lies there"),
    "per_task": Option(bool, False, nullable=False,
                       help="choose a rate per task and variant (VTAB-1k practice) rather than one per variant"),
    "require_rates": Option(bool, False, nullable=False,
                            help="refuse runs evaluated on a test split unless the included rates file was written "
                                 "by `aurora-bench tune` for this config's grids, recipe and every variant"),
}

METHOD_OVERRIDE = {
    "method": Option(str, None, help="the registered method (default: the variant's own name)"),
    "config": Option(dict, None, help="fields of the method's config (r, alpha, targets, ...)"),
    "train": Option(dict, None, help="train: keys that differ for this variant"),
    "model": Option(dict, None, help="model: keys that differ for this variant"),
    "data": Option(dict, None, help="data: keys that differ for this variant"),
}

TASK_OVERRIDE = {
    "train": Option(dict, None, help="train: keys that differ for this task"),
    "model": Option(dict, None, help="model: keys that differ for this task"),
    "data": Option(dict, None, help="data: keys that differ for this task"),
}

SECTIONS = {"model": MODEL, "train": TRAIN, "tune": TUNE}
