"""`train.compile`: how a run's model is torch.compile'd, where the compile's artifacts are cached, and what the
compile cost (for the run's record).

Modes:
- auto (the default): regional on CUDA, none elsewhere (inductor's compile costs more than it saves in a CPU
  run, and the CPU is where the tests run).
- none: eager (still CUDA graphs on one GPU, run/cuda_graph.py).
- model: the whole model in one torch.compile (tens of seconds per process on ViT-B/16, RESULTS.md).
- regional: each repeated transformer block compiled on its own (PyTorch's "regional compilation" recipe). The
  blocks share their class's forward, so dynamo traces and inductor compiles one block and every other block
  of that shape reuses the code: compile time stops growing with depth. A PEFT model compiles its first block
  twice (its input needs no gradient, the later blocks' inputs do), and once more for no-grad evaluation.
- regional-autotune: regional, with inductor's max-autotune: per GEMM shape it times its Triton templates against
  cuBLAS and keeps the faster, and a template that wins takes the ops after it (GELU, a residual add, a cast)
  into its epilogue; after cuBLAS each is a kernel of its own that reads the whole activation again. A cold
  compile takes longer (every shape is timed); the choices land in the same cache, so a warm one does not.

Caches: inductor's FX graph cache and AOTAutograd's cache (on by default) are pointed at
<data.cache_dir>/compile for the length of a run (`settings`), so the first process compiles a (model,
method, batch shape, torch version) and every later process and sweep worker sharing the cache loads the
kernels instead (their keys hold the graph, the shapes, the device and the torch and triton versions; writes
are atomic, so workers may share the folder). AURORA_VISION_COMPILE_CACHE names another folder.
"""
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..config.sections import COMPILE_MODES as MODES
from ..errors import UserError
from . import fp8

# train.compile's older boolean spelling keeps its meaning
_SPELLINGS = {False: "none", True: "model", None: "none"}
AUTO = {"cuda": "regional"}  # what auto means per device type; none on any other
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
TRITON_CACHE_ENV = "TRITON_CACHE_DIR"
OWN_CACHE_ENV = "AURORA_VISION_COMPILE_CACHE"  # a folder of one's own instead of <data.cache_dir>/compile
# regional compiles share one code object (a block class's forward): a ViT meets it with and without an input
# gradient, with and without grad mode, at the batch and the tail batch; dynamo's default of 8 entries per code
# object would silently fall back to eager past that
RECOMPILE_LIMIT = 64
# inductor's options per regional mode; "no-cudagraphs" since the runner captures the whole step in a graph of its
# own (run/cuda_graph.py), which inductor's graphs inside it would break
REGIONAL = {"regional": {}, "regional-autotune": {"mode": "max-autotune-no-cudagraphs"}}


def compile_mode(value, device_type: str) -> str:
    """'none', 'regional', 'regional-autotune' or 'model' for a `train.compile` value on a device type
    (true/false still mean model/none; auto is AUTO's choice for the device type)."""
    mode = _SPELLINGS.get(value, value) if isinstance(value, (bool, type(None))) else value
    if mode not in MODES:
        raise UserError(f"train.compile must be one of {', '.join(MODES)} (or true/false), got {value!r}")
    return AUTO.get(device_type, "none") if mode == "auto" else mode


def run_mode(train_cfg: dict, device_type: str) -> str:
    """The mode a run compiles with: train.compile's, except that fp8 on CUDA compiles (run/fp8.py), per
    block unless train.compile says otherwise (the cheapest compile)."""
    mode = compile_mode(train_cfg.get("compile"), device_type)
    return "regional" if mode == "none" and fp8.implies_compile(train_cfg, device_type) else mode


def add_compile_option(parser, help: str, default: str = "none") -> None:
    """The perf scripts' --compile: alone it means the whole model, `--compile regional` per block, `--compile
    auto` the runner's default; left out, `default` (none: the runner's default before auto, the baseline the
    timing scripts compare with)."""
    parser.add_argument("--compile", nargs="?", const="model", default=default, choices=MODES, help=help)


def _signature(module: nn.Module) -> tuple:
    return type(module), tuple((name, tuple(p.shape)) for name, p in module.named_parameters())


def _is_repeated(container: nn.Module) -> bool:
    """A ModuleList/Sequential of blocks of one model class and one parameter layout (a ViT's `blocks`, a Swin
    stage's `blocks`); not one of torch.nn's own layers (a Sequential of Linears is no transformer block)."""
    children = list(container.children())
    if not isinstance(container, (nn.ModuleList, nn.Sequential)) or not children:
        return False
    first = _signature(children[0])
    return type(children[0]).__module__.split(".")[0] != "torch" and all(_signature(c) == first for c in children)


def repeated_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, block) of every repeated block, outermost first found: a repeated container's blocks, and none of
    what lies inside them (Swin's stages differ in width, so its `layers` is no repeat; each stage's `blocks`
    is)."""
    found, inside = [], []
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        if _is_repeated(module):
            found += [(f"{name}.{child}" if name else child, block) for child, block in module.named_children()]
            inside.append(name)
    return found


def compile_regions(model: nn.Module, **options) -> list[str]:
    """Compile every repeated block of `model` in place (`nn.Module.compile`, with torch.compile `options`);
    returns their names. Static shapes: the step replays per batch size in CUDA graphs anyway, and a static
    graph fuses best."""
    blocks = repeated_blocks(model)
    if not blocks:
        raise UserError(f"train.compile={'/'.join(REGIONAL)} found no repeated blocks in {type(model).__name__} (a "
                        "ModuleList/Sequential of one block class); use train.compile=model")
    torch._dynamo.reset()  # a worker's earlier models: a clean slate for this one's entries
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    for _, block in blocks:
        block.compile(**{"dynamic": False, **options})
    return [name for name, _ in blocks]


def compiled(model: nn.Module) -> nn.Module:
    """torch.compile on a clean slate. Models of one process (a sweep worker's runs, speed.py's methods)
    share timm's forward code, and past dynamo's recompile limit (8 per code object) a later model would
    silently run eager: speed.py's first compiled table lost LoRA and AuroRA at batch 256 that way."""
    torch._dynamo.reset()
    return torch.compile(model)


def for_training(step_model: nn.Module, model: nn.Module, mode: str) -> nn.Module:
    """What the training step calls: `step_model` (the model, or its DDP wrapper) compiled whole, or as it is
    with `model`'s blocks compiled in place (DDP then stays outside every compiled region)."""
    if mode == "model":
        return compiled(step_model)
    if mode in REGIONAL:
        compile_regions(model, **REGIONAL[mode])
    elif mode != "none":  # auto, unresolved (compile_mode resolves it), would silently run eager
        raise ValueError(f"compile mode {mode!r}: pass compile_mode(value, device_type)")
    return step_model


def eager():
    """A context in which compiled regions run eagerly: one-off passes (the merged evaluations) that would
    otherwise compile the blocks again for a single use."""
    return torch.compiler.set_stance("force_eager")


def cache_folder(directory) -> str:
    """The compile cache folder a run uses: `directory`, or AURORA_VISION_COMPILE_CACHE when set."""
    return str(Path(os.environ.get(OWN_CACHE_ENV) or directory).expanduser().resolve())


@contextmanager
def settings(folder):
    """One run's process-wide compile settings: inductor's caches (it reads TORCHINDUCTOR_CACHE_DIR at each
    use) and Triton's pointed at `folder` (None leaves them), and on leaving, also after an error, those two
    variables and dynamo's recompile limit (compile_regions raises it) as they were. A sweep worker's next
    run (another data.cache_dir, or no compile) then starts from the process's own settings. Triton's folder
    is set here because inductor sets TRITON_CACHE_DIR for the whole process on its first kernel, under the
    first run's cache, where every later run's kernels would go."""
    saved = {name: os.environ.get(name) for name in (CACHE_ENV, TRITON_CACHE_ENV)}
    limit = torch._dynamo.config.recompile_limit
    if folder is not None:
        os.environ[CACHE_ENV] = folder
        os.environ[TRITON_CACHE_ENV] = str(Path(folder) / "triton")
    try:
        yield folder
    finally:
        torch._dynamo.config.recompile_limit = limit
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cache_dir_for(data_cache) -> Path:
    """The compile cache of a sweep: beside its decoded images (data.cache_dir), shared by its workers."""
    from ..data.cache import DEFAULT_CACHE
    return Path(data_cache or DEFAULT_CACHE) / "compile"


_HITS = {"fx_graph": ("inductor", "fxgraph_cache_hit", "fxgraph_cache_miss", "fxgraph_cache_bypass"),
         "aot_autograd": ("aot_autograd", "autograd_cache_hit", "autograd_cache_miss", "autograd_cache_bypass")}


def _now() -> dict:
    from torch._dynamo.utils import calculate_time_spent, counters
    out = {"seconds": calculate_time_spent().get("total_wall_time", 0.0),
           "graphs": counters["stats"]["unique_graphs"], "graph_breaks": sum(counters["graph_break"].values()),
           # GEMMs whose kernel max-autotune chose by timing in this process (none where the cache had them)
           "autotuned": counters["inductor"]["select_algorithm_autotune"]}
    for cache, (group, hit, miss, bypass) in _HITS.items():
        out[cache] = {"hit": counters[group][hit], "miss": counters[group][miss], "bypass": counters[group][bypass]}
    return out


class CompileCost:
    """Counts what torch.compile did from its creation on: `report()` gives the record's `compile` entry."""

    def __init__(self, mode: str, cache: str = None):
        self.mode, self.cache, self.start = mode, cache, _now()

    def report(self) -> dict:
        """{mode, cache_dir, seconds (dynamo + AOTAutograd + inductor, forward and backward), graphs,
        graph_breaks, autotuned (GEMMs max-autotune timed), fx_graph / aot_autograd cache hits, misses and
        bypasses, and `cache`: 'warm' (every compiled graph came from the cache), 'cold' (none did), 'partial',
        or None without a compile}.
        A bypass is a graph the cache refused (an uncacheable op) and inductor compiled anew: it is no hit."""
        if self.mode == "none":
            return {"mode": "none"}
        now, start = _now(), self.start
        out = {"mode": self.mode, "cache_dir": self.cache,
               **{k: now[k] - start[k] for k in ("seconds", "graphs", "graph_breaks", "autotuned")}}
        for cache in _HITS:
            out[cache] = {k: now[cache][k] - start[cache][k] for k in now[cache]}
        out["cache"] = cache_state(out["fx_graph"])
        return out


def cache_state(fx: dict):
    """'warm', 'cold', 'partial' or None (nothing compiled) from the FX graph cache's hit/miss/bypass counts."""
    compiled_graphs = fx["hit"] + fx["miss"] + fx["bypass"]
    if compiled_graphs == 0:
        return None
    return "warm" if fx["hit"] == compiled_graphs else "cold" if fx["hit"] == 0 else "partial"
