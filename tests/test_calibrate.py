"""The calibrated merge (aurora_vision/calibrate.py): exact where the branch is linear on the data, better than
the static merge where it is not, in forward order, fully undone by unmerge, and never the default."""
import pytest
import torch

import aurora_vision as av
from aurora_vision import calibrate

from fixtures import tiny_input, tiny_model


def trained_like(targets: str = "qv", a_scale: float = 1.0, seed: int = 3):
    """A tiny AuroRA ViT whose branches are far from zero (B = 0 at init would make every merge exact)."""
    model = av.apply(tiny_model(), "aurora", targets=targets).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in av.adapter_layers(model):
            layer.B.copy_(0.5 * torch.randn(layer.B.shape, generator=g))
            layer.A.mul_(a_scale)  # larger A: sigma further from linear over the columns of A
    return model


def rel(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


def calibration_batches(n: int = 3, batch: int = 8):
    return [tiny_input(batch=batch, seed=s) for s in range(n)]


def weights(model):
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


def test_solver_recovers_a_linear_branch_and_scores_it_from_the_sums():
    g = torch.Generator().manual_seed(0)
    x, code = torch.randn(500, 12, generator=g).double(), torch.randn(3, 12, generator=g).double()
    stats = calibrate.BranchStats.empty(12, 3, "cpu")
    stats.add(x[:200], x[:200] @ code.T)  # two batches: the sums accumulate
    stats.add(x[200:], x[200:] @ code.T)
    assert stats.tokens == 500
    fitted = calibrate.fit_code(stats, ridge=0.0)
    assert torch.allclose(fitted, code, atol=1e-10)
    up, off = torch.randn(7, 3, generator=g).double(), torch.randn(7, 12, generator=g).double()
    direct = rel(x @ (up @ code + off).T, x @ code.T @ up.T) ** 2
    assert calibrate.relative_error(stats, up @ code + off, up) == pytest.approx(direct, rel=1e-9)
    assert calibrate.relative_error(stats, up @ fitted, up) < 1e-15


def test_lora_takes_its_exact_merge():
    x = tiny_input(batch=4, seed=7)
    model = av.apply(tiny_model(), "lora", r=2, targets="qv").eval()
    for _, layer in av.adapter_layers(model):
        torch.nn.init.normal_(layer.B)
    exact = av.apply(tiny_model(), "lora", r=2, targets="qv").eval()
    exact.load_state_dict(model.state_dict())
    with torch.no_grad():
        y = model(x)
        assert av.merge(model, calibration=calibration_batches()) == {}  # nothing fitted
        av.merge(exact)
        assert all(torch.equal(a, b) for a, b in zip(weights(model).values(), weights(exact).values()))
        assert torch.allclose(model(x), y, atol=1e-5)


@pytest.mark.parametrize("targets", ["qv", "all"])
def test_reproduces_a_branch_that_is_linear_on_the_calibration_data(targets):
    """One image: 17 tokens per layer against 32 or more input features, so every branch, however
    nonlinear, is a linear map on them; with a tiny ridge the calibrated merge interpolates it, layer
    after layer, while the static merge is far off."""
    model, x = trained_like(targets, a_scale=3.0), tiny_input(batch=1, seed=5)
    with torch.no_grad():
        y = model(x)
        av.merge(model, approximate=True)
        static = rel(model(x), y)
        av.unmerge(model)
        report = av.merge(model, calibration=x, ridge=1e-10)
        calibrated = rel(model(x), y)
    assert static > 0.1 and calibrated < 1e-3
    assert all(r["tokens"] == 17 and r["relative_error"] < 1e-4 < r["static_relative_error"] for r in report.values())


@pytest.mark.parametrize("targets", ["qv", "all"])
def test_beats_the_static_merge_on_held_out_inputs(targets):
    model, test = trained_like(targets), tiny_input(batch=32, seed=99)
    with torch.no_grad():
        y = model(test)
        av.merge(model, approximate=True)
        static = rel(model(test), y)
        av.unmerge(model)
        av.merge(model, calibration=calibration_batches())
        calibrated = rel(model(test), y)
    assert calibrated < 0.8 * static


def test_every_family_fits_each_layer_and_unmerges(family):
    """Swin's windowed tokens included: every adapted layer is fitted (on a least-squares optimum, so below
    the static delta's error on the same tokens) and unmerge gives the exact outputs back."""
    model = av.apply(tiny_model(family), "aurora", targets="all").eval()
    g = torch.Generator().manual_seed(3)
    x = tiny_input(family, batch=4, seed=99)
    with torch.no_grad():
        for _, layer in av.adapter_layers(model):
            layer.B.copy_(0.5 * torch.randn(layer.B.shape, generator=g))
        y = model(x)
        report = av.merge(model, calibration=[tiny_input(family, batch=8, seed=s) for s in range(2)])
        assert set(report) == {name for name, _ in av.adapter_layers(model)}
        assert all(r["relative_error"] < 0.5 * r["static_relative_error"] for r in report.values())
        av.unmerge(model)
        assert torch.allclose(model(x), y, atol=1e-5)


def test_each_layer_is_fitted_on_the_inputs_of_the_merged_model_before_it():
    model, batches = trained_like("all"), calibration_batches()
    name, last = list(av.adapter_layers(model))[-1]
    with torch.no_grad():
        unmerged_fit = last.scaling * last.up_weight().double() @ calibrate.fit_code(
            calibrate.collect(model, name, last, batches))
        av.merge(model, calibration=batches)
        # the last layer's input does not depend on its own merge: re-collected now, it sees the merged model
        merged_fit = last.scaling * last.up_weight().double() @ calibrate.fit_code(
            calibrate.collect(model, name, last, batches))
    assert torch.allclose(last.merged_delta.double(), merged_fit, atol=1e-5)
    assert not torch.allclose(last.merged_delta.double(), unmerged_fit, atol=1e-3)


def test_unmerge_restores_weights_and_outputs():
    model, x = trained_like("all"), tiny_input(batch=4, seed=7)
    before = weights(model)
    with torch.no_grad():
        y = model(x)
        av.merge(model, calibration=calibration_batches())
        assert not torch.allclose(model(x), y, atol=1e-3)
        av.unmerge(model)
        assert all(torch.allclose(before[n], w, atol=1e-6, rtol=0) for n, w in weights(model).items())
        assert torch.allclose(model(x), y, atol=1e-6)
        assert all(layer.merged_delta is None for _, layer in av.adapter_layers(model))


def test_a_failure_midway_leaves_nothing_merged():
    model, good = trained_like("all"), tiny_input(batch=2)
    before = weights(model)
    bad = torch.randn(2, 1, 32, 32)  # one channel: patch_embed fails once the good batch has passed
    with pytest.raises(RuntimeError):
        av.merge(model, calibration=[good, bad])
    assert not any(layer.merged for _, layer in av.adapter_layers(model))
    assert all(torch.allclose(before[n], w, atol=1e-6, rtol=0) for n, w in weights(model).items())


def test_merge_and_unload_gives_the_calibrated_plain_model():
    model, x, batches = trained_like("qv"), tiny_input(batch=4, seed=7), calibration_batches()
    with torch.no_grad():
        av.merge(model, calibration=batches)
        merged = model(x)
        av.unmerge(model)
        plain = av.merge_and_unload(model, calibration=batches)
        assert not list(av.adapter_layers(plain)) and torch.allclose(plain(x), merged, atol=1e-6)


def test_runs_under_autocast_and_keeps_the_weight_dtype():
    model, test = trained_like("qv"), tiny_input(batch=32, seed=99)
    with torch.no_grad():
        y = model(test)
        av.merge(model, approximate=True)
        static = rel(model(test), y)
        av.unmerge(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            av.merge(model, calibration=calibration_batches())
        assert all(layer.base_layer.weight.dtype == torch.float32 for _, layer in av.adapter_layers(model))
        assert rel(model(test), y) < 0.8 * static


def test_never_the_default_and_clear_errors():
    model = trained_like("qv")
    with pytest.raises(ValueError, match="cannot be merged exactly"):
        av.merge(model)
    with pytest.raises(ValueError, match="not both"):
        av.merge(model, approximate=True, calibration=calibration_batches())
    with pytest.raises(ValueError, match="ridge applies to the calibrated merge only"):
        av.merge(model, approximate=True, ridge=1e-3)
    with pytest.raises(TypeError, match="one-shot iterator"):
        av.merge(model, calibration=(b for b in calibration_batches()))
    with pytest.raises(TypeError, match="input tensors"):
        av.merge(model, calibration=[(tiny_input(), torch.zeros(2))])
    with pytest.raises(ValueError, match="no batches"):
        av.merge(model, calibration=[])
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        av.merge(model, calibration=calibration_batches(), ridge=-1.0)
    assert not any(layer.merged for _, layer in av.adapter_layers(model))
    av.merge(model, calibration=lambda: iter(calibration_batches()))  # a callable: a fresh iterable per pass
    with pytest.raises(RuntimeError, match="already merged"):
        av.merge(model, calibration=calibration_batches())


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_calibration_pixel_is_named_as_such(value):
    """It was reported as "calibration inputs are all zero"."""
    model, batches = trained_like("qv"), calibration_batches()
    batches[1][0, 0, 3, 5] = value
    with pytest.raises(ValueError, match=r"calibration inputs hold non-finite values \(NaN or inf\)"):
        av.merge(model, calibration=batches)
    assert not any(layer.merged for _, layer in av.adapter_layers(model))


def test_runner_records_the_calibrated_merge_fitted_on_training_images(tmp_path, monkeypatch):
    from aurora_bench.config import resolve_run
    from aurora_bench.run import train_run
    from fixtures import tiny_cfg

    fitted_on, merge = [], av.merge

    def spy(model, *args, **kwargs):
        if kwargs.get("calibration") is not None:
            fitted_on.append(torch.cat(list(kwargs["calibration"]())))
        return merge(model, *args, **kwargs)

    monkeypatch.setattr(av, "merge", spy)
    cfg = tiny_cfg(tmp_path, methods=["aurora"])
    assert train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)["accuracy_calibrated_merge"] is None
    cfg["train"]["calibrated_merge"] = True
    result = train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)
    assert 0 <= result["accuracy_calibrated_merge"] <= 100
    # every training image (fewer than CALIBRATION_IMAGES), none of the 9 evaluation ones
    assert len(fitted_on) == 1 and fitted_on[0].shape[0] == result["num_train"] == 18


def test_merge_forms_script_on_a_tiny_config(tmp_path):
    import json

    import yaml

    from aurora_bench.perf import merge_forms
    from fixtures import tiny_cfg

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_cfg(tmp_path)))
    merge_forms.main([str(tmp_path / "tiny.yaml"), "--tasks", "mytask", "--ridges", "1e-3", "1e-1",
                      "--out", str(tmp_path / "forms")])
    row, = json.loads((tmp_path / "forms" / "merge_forms.json").read_text())["rows"]
    aurora, lora = row["aurora"], row["lora"]
    assert aurora["params"] == lora["params"] + 2 * 20  # r=2 on q and v: sigma's 20 weights per adapter
    assert lora["merged"] == lora["exact"]  # LoRA's merge is exact
    for value in [aurora["exact"], aurora["static"]] + [c["accuracy"] for c in aurora["calibrated"].values()]:
        assert 0 <= value <= 100
    assert set(aurora["calibrated"]) == {"0.001", "0.1"}
    assert "| mytask | 0 | 168 |" in (tmp_path / "forms" / "merge_forms.md").read_text()
