"""CUDA-graph training (benchmarks/cuda_graph.py) and AuroRA's CUDA nonlinearities. The undo of a capture's
warm-up runs everywhere; the rest needs a GPU and is skipped without one (`pytest tests/test_cuda_graph.py`
on the device: benchmarks/RESULTS.md records its runs)."""
import pytest
import torch
import torch.nn.functional as F

from aurora_vision.layers.nonlinearity import fused_sigma_cubic, sigma_cubic
from aurora_bench.config import resolve_run
from aurora_bench.run.cuda_graph import GraphedTrainStep, restore, snapshot
from aurora_bench.run import train_run

from fixtures import tiny_cfg, tiny_input, tiny_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _trainer(device="cpu", capturable=False):
    model = tiny_model("vit", aurora=True).to(device)
    lr = torch.tensor(1e-2, device=device) if capturable else 1e-2
    params = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.AdamW([{"params": params, "lr": lr}], capturable=capturable)


def _loss(model):
    return lambda x, y: F.cross_entropy(model(x), y)


def _eager_steps(model, opt, batches, scheduler=None):
    for x, y in batches:
        loss = _loss(model)(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        scheduler and scheduler.step()


def _rising(opt):  # a learning rate that changes every step: the graph must read the scheduler's value
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (step + 1) / 3)


def _batches(device="cpu", sizes=(4, 4, 4, 4)):
    return [(tiny_input("vit", n, seed=i).to(device), torch.arange(n, device=device) % 5)
            for i, n in enumerate(sizes)]


def _assert_same_training_state(a, a_opt, b, b_opt, tol=0.0):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=tol, atol=tol, msg=name)
    for sa, sb in zip(a_opt.state.values(), b_opt.state.values()):
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=tol, atol=tol, msg=k)


def test_restore_undoes_warmup_before_and_after_optimizer_state_exists():
    batches, other = _batches(), _batches(sizes=(3, 3, 3))
    ref, ref_opt = _trainer()
    _eager_steps(ref, ref_opt, batches)
    model, opt = _trainer()
    for done in (batches[:2], batches[2:]):  # a capture before AdamW has state (the first step), one mid-run
        snap = snapshot(model, opt)
        _eager_steps(model, opt, other)  # a capture's warm-up: real updates on other data
        restore(model, opt, snap)
        _eager_steps(model, opt, done)
    _assert_same_training_state(ref, ref_opt, model, opt)


@cuda
def test_graphed_steps_equal_eager_steps_with_a_tail_batch():
    batches = _batches("cuda", sizes=(8, 8, 5, 8, 8, 5))  # two graphs: full batches and the tail
    ref, ref_opt = _trainer("cuda", capturable=True)
    _eager_steps(ref, ref_opt, batches, _rising(ref_opt))
    model, opt = _trainer("cuda", capturable=True)
    step, scheduler = GraphedTrainStep(model, opt, _loss(model)), _rising(opt)
    losses = []
    for x, y in batches:
        losses.append(step(x, y).item())
        scheduler.step()
    assert sorted(step.graphs) == [5, 8] and all(l > 0 for l in losses)
    _assert_same_training_state(ref, ref_opt, model, opt, tol=1e-4)


@cuda
@pytest.mark.parametrize("compiled", [False, True, "regional"])
def test_runner_with_graphs_matches_eager(tmp_path, monkeypatch, compiled):
    """With train.compile (whole or regional) the graph replays the compiled kernels (compiled in the warm-up);
    evaluation replays graphed forward passes, its tail batch padded."""
    cfg = tiny_cfg(tmp_path)
    cfg["train"].update(device="cuda", epochs=3, compile=compiled)  # 18 images, batch 4: a tail batch of 2
    run = resolve_run(cfg, "mytask", "aurora", 0)
    graphed = train_run(run, quiet=True)
    monkeypatch.setenv("AURORA_VISION_CUDA_GRAPHS", "0")
    eager = train_run(run, quiet=True)
    assert graphed["cuda_graphs"] and not eager["cuda_graphs"]
    for g, e in zip(graphed["curve"], eager["curve"]):
        assert g["loss"] == pytest.approx(e["loss"], rel=2e-2)  # bf16 autocast on both
    assert graphed["compile"]["mode"] == {False: "none", True: "model"}.get(compiled, compiled)


@cuda
def test_triton_sigma_equals_formula_on_the_gpu():
    from triton_sigma_cases import check
    assert check("cuda", tokens=(64, 197), tol=1e-3) == 6  # a ViT batch's tokens: many programs
    every = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    assert check("cuda", opcheck=every) == 6  # the op's registration: fake tensors, autograd, AOT dispatch


@cuda
def test_compiled_sigma_equals_formula_on_the_gpu():
    z = (torch.randn(64, 197, 2, 2, device="cuda") * 1.5).requires_grad_()
    H = torch.randn(2, 2, 2, device="cuda", requires_grad=True)
    W = torch.randn(2, 2, 8, device="cuda", requires_grad=True)
    out, ref = fused_sigma_cubic(z, H, W, -2.2, 0.4), sigma_cubic(z, H, W, -2.2, 0.4)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    gout = torch.randn_like(ref)
    for got, want in zip(torch.autograd.grad(out, (z, H, W), gout), torch.autograd.grad(ref, (z, H, W), gout)):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


@cuda
def test_graphed_evaluation_equals_eager_evaluation():
    """Eleven images in batches of 4: two graphed batches and a padded tail, the same correct count."""
    from aurora_bench.data import DeviceSplit, DeviceTransform
    from aurora_bench.run.evaluate import GraphedEval, evaluate
    model = tiny_model("vit", num_classes=3).cuda().eval()
    images = torch.randint(0, 255, (11, 32, 32, 3), dtype=torch.uint8)
    split, transform = DeviceSplit(images, torch.arange(11) % 3, "cuda"), DeviceTransform(32, (0.5,) * 3, (0.5,) * 3)
    autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
    forward = GraphedEval(model, transform, autocast)
    graphed = evaluate(model, split, transform, 4, autocast, forward)
    assert list(forward.graphs) == [(4, 3, 32, 32)]
    assert graphed["accuracy"] == evaluate(model, split, transform, 4, autocast)["accuracy"]
