"""train.compile (none / regional / model), its blocks, its cache record, and the padded (graphable) evaluation."""
import pytest
import timm
import torch

import aurora_vision as av
from aurora_bench.config import load_config, resolve_run
from aurora_bench.errors import UserError
from aurora_bench.run import compiling, train_run
from aurora_bench.run.evaluate import PAD_LABEL, evaluate, pad_batch
from aurora_bench.data import DeviceSplit, DeviceTransform
from fixtures import TINY, tiny_cfg, tiny_input, tiny_model

METHODS = {"aurora": {"r": 2, "alpha": 4, "targets": "qv"}, "lora": {"r": 2, "targets": "qv"}}


def test_compile_modes_keep_the_boolean_meaning_and_auto_resolves_per_device():
    for device in ("cpu", "cuda"):
        assert [compiling.compile_mode(v, device) for v in (False, True, "none", "regional", "model")] == \
            ["none", "model", "none", "regional", "model"]
    assert [compiling.compile_mode("auto", d) for d in ("cuda", "cpu", "mps")] == ["regional", "none", "none"]
    with pytest.raises(UserError, match="train.compile must be one of auto, none, regional, regional-autotune, model"):
        compiling.compile_mode("fast", "cuda")
    with pytest.raises(ValueError, match="compile mode 'auto'"):  # unresolved, it would run eager unannounced
        compiling.for_training(tiny_model("vit"), tiny_model("vit"), "auto")


def test_config_takes_auto_regional_and_the_old_booleans(tmp_path):
    base = {"name": "t", "tasks": ["mytask"], "methods": ["lora"], "data": {"root": str(tmp_path)}}
    assert load_config(base)["train"]["compile"] == "auto"  # the default
    for value in (True, False, "auto", "regional", "regional-autotune", "model", "none"):
        assert load_config({**base, "train": {"compile": value}})["train"]["compile"] == value  # as given
    with pytest.raises(UserError, match="train.compile must be one of auto, none, regional, regional-autotune, model"):
        load_config({**base, "train": {"compile": "fast"}})


def test_compile_is_how_a_run_executes_not_what_it_computes(tmp_path):
    """Records made when the default was false (or with another mode) stand for runs under auto: a sweep
    resumes them instead of refusing a changed config; each record keeps the mode it ran with."""
    from aurora_bench import store
    cfg = tiny_cfg(tmp_path)
    run = resolve_run(cfg, "mytask", "lora", 0)
    assert run["train"]["compile"] == "auto"
    for recorded in (False, "regional", "model"):
        old = resolve_run({**cfg, "train": {**cfg["train"], "compile": recorded}}, "mytask", "lora", 0)
        assert store.same_config(old, run)


def test_a_cpu_run_under_auto_runs_and_records_eager(tmp_path):
    cfg = tiny_cfg(tmp_path)
    cfg["train"].update(epochs=1, warmup_epochs=0)
    result = train_run(resolve_run(cfg, "mytask", "lora", 0), quiet=True)
    assert result["config"]["train"]["compile"] == "auto"
    assert result["compile"] == {"mode": "none"} and result["compiled"] is False


@pytest.mark.parametrize("family, names", [("vit", ["blocks.0", "blocks.1"]),
                                           ("swin", ["layers.0.blocks.0", "layers.1.blocks.0"])])
def test_repeated_blocks_are_the_transformer_blocks(family, names):
    model = av.apply(tiny_model(family), "aurora", METHODS["aurora"])
    assert [n for n, _ in compiling.repeated_blocks(model)] == names


def test_repeated_blocks_of_every_tiny_family_are_blocks_and_never_nested():
    for family in TINY:
        names = [n for n, _ in compiling.repeated_blocks(tiny_model(family))]
        assert names and all(n.split(".")[-2] == "blocks" for n in names), (family, names)
        assert not any(a != b and b.startswith(a + ".") for a in names for b in names)


def test_a_model_without_repeated_blocks_is_a_user_error():
    with pytest.raises(UserError, match="found no repeated blocks"):
        compiling.compile_regions(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))


def _block_inputs(model, x):
    seen = {}
    hooks = [b.register_forward_pre_hook(lambda m, args, n=n: seen.setdefault(n, args))
             for n, b in compiling.repeated_blocks(model)]
    model(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("family", list(TINY))
@pytest.mark.parametrize("method", list(METHODS))
def test_an_adapted_block_compiles_without_graph_breaks(family, method):
    """The adapter layers (and the sigma formula the CPU runs) trace whole, training and no-grad (folded), in
    every family the library adapts (DINOv2's LayerScale, a distilled DeiT's two tokens, SwinV2's scaled cosine
    attention among them)."""
    model = av.apply(tiny_model(family), method, METHODS[method])
    name, block = compiling.repeated_blocks(model)[-1]
    args = _block_inputs(model, tiny_input(family))[name]
    for grad in (True, False):
        model.train(grad)
        with torch.set_grad_enabled(grad):
            explained = torch._dynamo.explain(block)(*args)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


@pytest.mark.parametrize("family", list(TINY))
def test_sigma_custom_op_traces_whole_inside_a_compiled_block(monkeypatch, family):
    """AuroRA's Triton sigma as the runner takes it on CUDA, here on the CPU (the op's torch form): dynamo puts
    the op in the block's one graph (it broke the graph before: at the kernel module's importlib import and the
    custom autograd function), and a fullgraph compile through AOTAutograd (the op's registered backward) gives
    the eager block's output and input gradient."""
    pytest.importorskip("triton")
    from aurora_vision import kernels
    from aurora_vision.layers import nonlinearity
    model = av.apply(tiny_model(family, drop_path_rate=0.0), "aurora", METHODS["aurora"])  # Swin's is random
    name, block = compiling.repeated_blocks(model)[-1]
    (x,) = _block_inputs(model, tiny_input(family))[name]
    x = x.detach().requires_grad_()
    ref = block(x)  # the plain formula
    monkeypatch.setattr(kernels, "SIGMA_ON_CUDA", "triton")
    monkeypatch.setattr(nonlinearity, "FAST_DEVICES", ("cuda", "cpu"))
    explained = torch._dynamo.explain(block)(x)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    ops = [n.target for n in explained.graphs[0].graph.nodes if n.op == "call_function"]
    assert ops.count(torch.ops.aurora_vision.sigma_cubic.default) == 1  # the block's one AuroRA qkv
    torch._dynamo.reset()
    out = torch.compile(block, fullgraph=True, backend="aot_eager")(x)
    torch.testing.assert_close(out, ref)
    got, = torch.autograd.grad(out.square().sum(), x)
    want, = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("method", ["aurora", "lora"])
def test_adapted_blocks_make_no_untraceable_autocast_query(monkeypatch, method):
    """torch 2.11's dynamo cannot trace torch.amp.is_autocast_available (a C function): on CUDA each query
    inside a compiled block was a graph break, and the resumed code recompiled per block until dynamo's limit.
    Here the query is made untraceable on purpose: a block must still trace whole, under autocast too."""
    real = torch.amp.is_autocast_available
    monkeypatch.setattr(torch.amp, "is_autocast_available", torch._dynamo.disable(lambda t: real(t)))
    model = av.apply(tiny_model("vit"), method, METHODS[method])
    name, block = compiling.repeated_blocks(model)[-1]
    args = _block_inputs(model, tiny_input("vit"))[name]
    for grad in (True, False):
        model.train(grad)
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
            explained = torch._dynamo.explain(block)(*args)
        assert explained.graph_break_count == 0, explained.break_reasons


def test_regional_compile_traces_one_block_for_all_and_matches_eager():
    """Four identical blocks: dynamo compiles the first (its input needs no gradient) and one shared by the
    other three; outputs and adapter gradients equal the eager model's."""
    from torch._dynamo.utils import counters
    name, arch = TINY["vit"]
    deep = lambda: av.apply(timm.create_model(name, num_classes=5, **{**arch, "depth": 4}), "aurora", METHODS["aurora"])
    eager, regional = deep(), deep()
    regional.load_state_dict(eager.state_dict())
    names = compiling.compile_regions(regional, backend="aot_eager")
    assert names == [f"blocks.{i}" for i in range(4)]
    before = counters["stats"]["unique_graphs"]
    x = tiny_input("vit", 3)
    out, ref = regional(x), eager(x)
    out.square().sum().backward()
    ref.square().sum().backward()
    assert counters["stats"]["unique_graphs"] - before == 2
    torch.testing.assert_close(out, ref)
    for (n, p), (_, q) in zip(regional.named_parameters(), eager.named_parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, msg=n)


def test_regional_autotune_compiles_every_block_with_inductors_max_autotune(monkeypatch):
    """Only the inductor mode differs from regional, and without inductor's own CUDA graphs: the runner's graph of
    the whole step holds the compiled blocks."""
    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **options: seen.append((type(self), options)))
    model = tiny_model("vit")
    assert compiling.for_training(model, model, "regional-autotune") is model
    block = type(model.blocks[0])
    assert seen == [(block, {"dynamic": False, "mode": "max-autotune-no-cudagraphs"})] * 2
    seen.clear()
    compiling.for_training(model, model, "regional")
    assert seen == [(block, {"dynamic": False})] * 2


def test_eager_stance_runs_compiled_blocks_without_compiling():
    from torch._dynamo.utils import counters
    model = tiny_model("vit")
    compiling.compile_regions(model, backend="eager")
    before = counters["stats"]["unique_graphs"]
    with compiling.eager():
        model(tiny_input("vit"))
    assert counters["stats"]["unique_graphs"] == before


def test_cache_dir_is_beside_the_decoded_images(tmp_path, monkeypatch):
    monkeypatch.delenv(compiling.OWN_CACHE_ENV, raising=False)
    monkeypatch.setenv(compiling.CACHE_ENV, "/elsewhere")  # inductor's default, once it has run
    folder = compiling.cache_folder(compiling.cache_dir_for(tmp_path / "cache"))
    assert folder == str((tmp_path / "cache" / "compile").resolve())
    with compiling.settings(folder):
        assert compiling.os.environ[compiling.CACHE_ENV] == folder
    monkeypatch.setenv(compiling.OWN_CACHE_ENV, str(tmp_path / "mine"))
    assert compiling.cache_folder(tmp_path) == str(tmp_path / "mine")


def test_compile_settings_are_the_runs_own_and_restored_after_an_error(tmp_path, monkeypatch):
    """A sweep worker's next run must not inherit a run's cache folders or its raised recompile limit."""
    monkeypatch.setenv(compiling.CACHE_ENV, "/users/own")
    monkeypatch.delenv(compiling.TRITON_CACHE_ENV, raising=False)
    with torch._dynamo.config.patch(recompile_limit=8):
        with pytest.raises(RuntimeError, match="diverged"), compiling.settings(str(tmp_path)):
            assert compiling.os.environ[compiling.CACHE_ENV] == str(tmp_path)
            assert compiling.os.environ[compiling.TRITON_CACHE_ENV] == str(tmp_path / "triton")
            compiling.compile_regions(tiny_model("vit"), backend="eager")
            assert torch._dynamo.config.recompile_limit == compiling.RECOMPILE_LIMIT
            raise RuntimeError("diverged")
        assert torch._dynamo.config.recompile_limit == 8
    assert compiling.os.environ[compiling.CACHE_ENV] == "/users/own"
    assert compiling.TRITON_CACHE_ENV not in compiling.os.environ


def test_a_compiled_run_leaves_the_process_settings_as_it_found_them(tmp_path, monkeypatch):
    regions = compiling.compile_regions
    monkeypatch.setattr(compiling, "compile_regions", lambda model: regions(model, backend="eager"))  # fast
    monkeypatch.delenv(compiling.CACHE_ENV, raising=False)
    monkeypatch.delenv(compiling.TRITON_CACHE_ENV, raising=False)
    cfg = tiny_cfg(tmp_path)
    cfg["train"].update(compile="regional", epochs=1, warmup_epochs=0)
    with torch._dynamo.config.patch(recompile_limit=8):
        result = train_run(resolve_run(cfg, "mytask", "lora", 0), quiet=True)
        assert torch._dynamo.config.recompile_limit == 8
    assert result["compile"]["cache_dir"] == str((tmp_path / "cache" / "compile").resolve())
    assert compiling.CACHE_ENV not in compiling.os.environ and compiling.TRITON_CACHE_ENV not in compiling.os.environ


def test_compile_cost_without_a_compile_says_none():
    assert compiling.CompileCost("none").report() == {"mode": "none"}


def test_compile_cost_counts_a_graph_that_bypassed_the_cache_as_compiled():
    """A graph the FX cache refuses (an uncacheable op) is compiled anew in every process: never 'warm'."""
    from torch._dynamo.utils import counters
    cost = compiling.CompileCost("regional", "/cache")
    counters["inductor"]["fxgraph_cache_bypass"] += 2
    assert cost.report()["cache"] == "cold"  # every graph compiled, none loaded: not "no compile"
    counters["inductor"]["fxgraph_cache_hit"] += 3
    assert cost.report()["cache"] == "partial"  # three loaded, two compiled: not "warm"
    assert compiling.cache_state({"hit": 3, "miss": 0, "bypass": 0}) == "warm"
    assert compiling.cache_state({"hit": 0, "miss": 0, "bypass": 0}) is None


# the padded evaluation the graphed one runs

def test_pad_batch_fills_to_the_graph_shape_with_rows_that_never_count():
    x, y = torch.ones(3, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 2])
    px, py = pad_batch(x, y, 5)
    assert px.shape == (5, 3, 4, 4) and py.tolist() == [0, 1, 2, PAD_LABEL, PAD_LABEL]
    assert px[3:].eq(0).all() and px[:3].eq(1).all()
    assert pad_batch(x, y, 3)[0] is x


def test_padded_evaluation_gives_the_plain_accuracy():
    """Ten images in batches of 4: the tail of 2 is padded to 4 and its padding adds nothing."""
    torch.manual_seed(0)
    model = tiny_model("vit", num_classes=3).eval()
    images = torch.randint(0, 255, (10, 32, 32, 3), dtype=torch.uint8)
    labels = model(DeviceTransform(32, (0.5,) * 3, (0.5,) * 3)(images.permute(0, 3, 1, 2))).argmax(-1)
    labels[:3] = (labels[:3] + 1) % 3  # 7 of 10 right
    split, transform = DeviceSplit(images, labels, "cpu"), DeviceTransform(32, (0.5,) * 3, (0.5,) * 3)
    shapes = []

    def forward(x):
        shapes.append(x.shape[0])
        return model(transform(x))
    autocast = lambda: torch.autocast("cpu", enabled=False)
    plain = evaluate(model, split, transform, 4, autocast)
    padded = evaluate(model, split, transform, 4, autocast, forward=forward)
    assert plain["accuracy"] == padded["accuracy"] == pytest.approx(70.0)
    assert shapes == [4, 4, 4]


@pytest.mark.slow
def test_runner_with_regional_compile_records_a_cold_then_a_warm_compile(tmp_path):
    """Inductor on the CPU; the second run's kernels come from the cache the first one wrote."""
    cfg = tiny_cfg(tmp_path)
    cfg["train"].update(compile="regional", epochs=1, warmup_epochs=0, eval_every=1)
    run = resolve_run(cfg, "mytask", "aurora", 0)
    first, second = train_run(run, quiet=True), train_run(run, quiet=True)
    assert first["compile"]["mode"] == "regional" and first["compile"]["cache"] == "cold"
    assert first["compile"]["cache_dir"] == str((tmp_path / "cache" / "compile").resolve())
    assert first["compile"]["seconds"] > 0 and first["compile"]["graph_breaks"] == 0
    assert second["compile"]["cache"] == "warm" and second["compile"]["fx_graph"]["hit"] > 0
    assert second["accuracy"] == first["accuracy"]


@pytest.mark.slow
def test_compile_cost_measures_cold_and_warm_compiles_in_fresh_processes(tmp_path):
    """Tiny ViT on the CPU, inductor for real: cold and warm compile seconds, JSON and markdown."""
    import json
    from aurora_bench.perf import compile_cost
    kwargs = '{"img_size": 16, "patch_size": 8, "depth": 2, "embed_dim": 16, "num_heads": 2}'
    compile_cost.main(["--model", "vit_tiny_patch16_224", "--model-kwargs", kwargs, "--batch", "2", "--steps", "1",
                       "--repeats", "1", "--device", "cpu", "--modes", "none", "regional", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "compile_cost.json").read_text())
    assert list(res["modes"]) == ["none", "regional"]  # whole-model compile goes the same way (left out: time)
    assert res["modes"]["none"]["warm"]["compile"] == {"mode": "none"}
    cold, warm = res["modes"]["regional"]["cold"]["compile"], res["modes"]["regional"]["warm"]["compile"]
    assert (cold["mode"], cold["cache"], warm["cache"]) == ("regional", "cold", "warm")
    assert warm["seconds"] < cold["seconds"]
    assert "| regional |" in (tmp_path / "compile_cost.md").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the Triton sigma)")
def test_triton_sigma_traces_inside_a_compiled_block_on_the_gpu():
    """AuroRA's Triton sigma (the custom op aurora_vision::sigma_cubic, its kernels wrapped for inductor) inside a
    block: dynamo takes it without a graph break, and the inductor-compiled block's output and gradients equal
    eager's."""
    model = av.apply(tiny_model("vit"), "aurora", METHODS["aurora"]).cuda()
    name, block = compiling.repeated_blocks(model)[-1]
    (x,) = _block_inputs(model, tiny_input("vit").cuda())[name]
    x = x.detach().requires_grad_()
    explained = torch._dynamo.explain(block)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ref = block(x)
        out = torch.compile(block, dynamic=False, fullgraph=True)(x)
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-2)
    g, = torch.autograd.grad(out.float().square().sum(), x)
    r, = torch.autograd.grad(ref.float().square().sum(), x)
    torch.testing.assert_close(g, r, rtol=5e-2, atol=5e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (inductor's Triton GEMM templates)")
def test_regional_autotune_times_the_blocks_gemms_on_the_gpu_and_matches_eager(tmp_path):
    """On CUDA max-autotune times its Triton templates for the adapted blocks' GEMMs (the record's `autotuned`
    counts them); the trained model's output and adapter gradients stay eager's within bf16's error."""
    eager = av.apply(tiny_model("vit"), "aurora", METHODS["aurora"]).cuda()
    tuned = av.apply(tiny_model("vit"), "aurora", METHODS["aurora"]).cuda()
    tuned.load_state_dict(eager.state_dict())
    with compiling.settings(str(tmp_path)):  # empty caches: the GEMMs are timed here, not loaded
        compiling.for_training(tuned, tuned, "regional-autotune")
        cost = compiling.CompileCost("regional-autotune")  # after for_training's dynamo reset, as train.py counts
        x = tiny_input("vit", 8).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out, ref = tuned(x), eager(x)
        out.float().square().sum().backward()
    ref.float().square().sum().backward()
    assert cost.report()["autotuned"] > 0
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-2)
    for (n, p), (_, q) in zip(tuned.named_parameters(), eager.named_parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, rtol=5e-2, atol=5e-2, msg=n)
