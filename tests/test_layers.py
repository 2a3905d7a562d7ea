import pytest
import torch
from torch import nn

from aurora_vision.layers import AdaptiveNonlinearity, AuroraLinear, LoraLinear
from aurora_vision.layers.adapter import AdapterLinear


def base_linear(d_in=16, d_out=24, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(d_in, d_out)


def randomize(layer):
    """Non-zero B, so that the branch does something."""
    with torch.no_grad():
        layer.B.normal_(0, 0.5)
    return layer


@pytest.mark.parametrize("cls", [LoraLinear, AuroraLinear])
@pytest.mark.parametrize("slices", [None, [(0, 8), (16, 24)]])
def test_zero_at_init(cls, slices):
    base = base_linear()
    layer = cls(base, r=2, alpha=4, slices=slices)
    x = torch.randn(3, 5, 16)
    assert torch.equal(layer(x), base(x))


def test_sliced_adapter_leaves_other_rows_untouched():
    base = base_linear()
    layer = randomize(AuroraLinear(base, r=2, slices=[(0, 8), (16, 24)]))
    x = torch.randn(4, 16)
    delta = layer(x) - base(x)
    assert delta[:, 8:16].abs().max() == 0
    assert delta[:, :8].abs().max() > 0 and delta[:, 16:].abs().max() > 0


def test_aurora_forward_matches_formula():
    """h = W0 x + (alpha/r) B_i sigma_i(A_i x) per slice, sigma = tanh(H tanh z) + W_s sum_j bases(z_j)."""
    base = base_linear()
    layer = randomize(AuroraLinear(base, r=3, alpha=6, slices=[(0, 8), (16, 24)]))
    x = torch.randn(7, 16)
    expected = base(x).clone()
    for i, (s, e) in enumerate(layer.slices):
        z = x @ layer.A[i].T
        f = torch.tanh(torch.tanh(z) @ layer.sigma.H[i].T)
        bases = layer.sigma.bases(z).sum(dim=1)  # (7, G+k)
        l = bases @ layer.sigma.spline_weight[i].T
        expected[:, s:e] += 2.0 * (f + l) @ layer.B[i].T
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_aurora_parameter_count_per_layer():
    """r(d_in + d_out) + r^2 + r(G + k) per adapted slice."""
    layer = AuroraLinear(base_linear(16, 24), r=2)
    n = sum(p.numel() for name, p in layer.named_parameters() if not name.startswith("base_layer"))
    assert n == 2 * (16 + 24) + 4 + 2 * 8


@pytest.mark.parametrize("use_tanh,use_spline,names", [
    (True, True, {"H", "spline_weight"}), (False, True, {"spline_weight"}), (True, False, {"H"})])
def test_nonlinearity_ablation_switches(use_tanh, use_spline, names):
    sigma = AdaptiveNonlinearity(rank=2, use_tanh=use_tanh, use_spline=use_spline)
    assert {n for n, _ in sigma.named_parameters()} == names
    z = torch.randn(5, 1, 2)
    if not use_spline:
        assert torch.allclose(sigma(z), torch.tanh(torch.tanh(z) @ sigma.H[0].T))
    assert sigma(z).shape == z.shape


def test_nonlinearity_needs_a_path():
    with pytest.raises(ValueError):
        AdaptiveNonlinearity(rank=2, use_tanh=False, use_spline=False)


@pytest.mark.parametrize("use_rslora", [False, True])
def test_lora_merge_unmerge_round_trip(use_rslora):
    base = base_linear()
    w0 = base.weight.detach().clone()
    layer = randomize(LoraLinear(base, r=4, alpha=8, slices=[(0, 8), (16, 24)], use_rslora=use_rslora))
    x = torch.randn(6, 16)
    y = layer(x)
    layer.merge()
    assert torch.allclose(layer(x), y, atol=1e-5)
    assert torch.allclose(base(x), y, atol=1e-5)
    layer.unmerge()
    assert torch.allclose(base.weight, w0, atol=1e-6)
    assert torch.allclose(layer(x), y, atol=1e-6)


def test_aurora_static_merge_is_opt_in_and_unmerge_restores():
    base = base_linear()
    w0 = base.weight.detach().clone()
    layer = randomize(AuroraLinear(base, r=2, slices=[(0, 8), (16, 24)]))
    x = torch.randn(6, 16)
    y = layer(x)
    layer.eval()  # nothing merges on eval
    assert not layer.merged and torch.equal(layer(x), y)
    with pytest.raises(ValueError, match="approximate=True"):
        layer.merge()
    layer.merge(approximate=True)
    # the static form: W0 + s B sigma(A), sigma over the columns of A
    delta = torch.zeros_like(w0)
    for i, (s, e) in enumerate(layer.slices):
        cols = layer.sigma(layer.A[i].T.unsqueeze(1).expand(-1, 2, -1).contiguous())[:, i]  # (d_in, r)
        delta[s:e] = 2.0 * layer.B[i] @ cols.T
    assert torch.allclose(base.weight, w0 + delta, atol=1e-5)
    assert not torch.allclose(layer(x), y, atol=1e-4)  # an approximation, not the exact form
    layer.unmerge()
    assert torch.allclose(base.weight, w0, atol=1e-6)
    assert torch.allclose(layer(x), y, atol=1e-6)


def test_lora_equals_peft():
    peft = pytest.importorskip("peft")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = base_linear()

        def forward(self, x):
            return self.fc(x)

    for use_rslora in (False, True):
        ours = LoraLinear(base_linear(), r=4, alpha=8, use_rslora=use_rslora)
        theirs = peft.get_peft_model(Net(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["fc"],
                                                             use_rslora=use_rslora))
        fc = theirs.base_model.model.fc
        with torch.no_grad():
            fc.lora_B["default"].weight.normal_()
            ours.A.copy_(fc.lora_A["default"].weight[None])
            ours.B.copy_(fc.lora_B["default"].weight[None])
        x = torch.randn(5, 16)
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)
        assert ours.scaling == fc.scaling["default"]
        assert torch.allclose(ours.delta_weight(), fc.get_delta_weight("default"), atol=1e-6)


def test_wrapping_non_linear_raises():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoraLinear(nn.Conv2d(3, 3, 1))


def test_fused_nonlinearity_equals_reference():
    """The torch.compile'd path used on CUDA computes the same function (compiled here on the CPU)."""
    from aurora_vision.layers import nonlinearity as nl
    sigma = AdaptiveNonlinearity(rank=2, num_adapters=2)
    first, step = sigma._grid()
    for shape in [(7, 2, 2), (3, 5, 2, 2)]:
        z = torch.randn(*shape, requires_grad=True) * 1.5
        ref = sigma.bases(z).sum(-2)  # the module's own, eager path for the spline bases
        ref = torch.tanh(torch.einsum("...nr,nsr->...ns", torch.tanh(z), sigma.H)) + \
            torch.einsum("...ng,nrg->...nr", ref, sigma.spline_weight)
        fused = nl.fused_sigma_cubic(z, sigma.H, sigma.spline_weight, first, step)
        assert torch.allclose(fused, ref, atol=1e-5)
        g_ref = torch.autograd.grad(ref.sum(), [z, sigma.H, sigma.spline_weight])
        g_fused = torch.autograd.grad(fused.sum(), [z, sigma.H, sigma.spline_weight])
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g_ref, g_fused))


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("cls", [LoraLinear, AuroraLinear])
@pytest.mark.parametrize("slices,bias", [(None, True), ([(0, 8), (16, 24)], False)])
def test_eval_fold_equals_two_gemm_form(cls, slices, bias, device, monkeypatch):
    """Without autograd the branch rides in the base GEMM as extra input columns; same output."""
    torch.manual_seed(0)
    layer = randomize(cls(nn.Linear(16, 24, bias=bias), r=3, alpha=6, slices=slices)).to(device)
    x = torch.randn(2, 5, 16, device=device)
    folds = []
    monkeypatch.setattr(cls, "_folded_forward", lambda self, x: folds.append(1) or AdapterLinear._folded_forward(self, x))
    two_gemm = layer(x)
    with torch.no_grad():
        folded = layer(x)
    assert folds == [1]
    assert torch.allclose(folded, two_gemm, atol=1e-5)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        folded_bf16 = layer(x)
    assert folded_bf16.dtype == torch.bfloat16
    assert torch.allclose(folded_bf16.float(), two_gemm, atol=0.05, rtol=0.02)


def test_eval_fold_only_where_it_saves_traffic():
    """A narrowing layer (in > out) keeps the two-GEMM form: copying its wide input would cost more."""
    layer = randomize(AuroraLinear(nn.Linear(24, 16), r=2))
    called = []
    layer._folded_forward = lambda x: called.append(1)
    with torch.no_grad():
        layer(torch.randn(3, 24))
    assert called == []


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("cls", [LoraLinear, AuroraLinear])
def test_training_under_autocast_matches_fp32(cls, device):
    """Under bf16 autocast the layer casts its fp32 input once for both GEMMs; output and every gradient stay
    those of the fp32 layer within bf16 error, and the input's gradient comes back in fp32."""
    torch.manual_seed(0)
    layer = randomize(cls(nn.Linear(32, 48), r=2, alpha=4, slices=[(0, 16), (32, 48)])).to(device)
    x = torch.randn(4, 7, 32, device=device, requires_grad=True)
    gout = torch.randn(4, 7, 48, device=device)
    params = [x, layer.A, layer.B]
    ref = torch.autograd.grad(layer(x), params, gout)
    with torch.autocast(device, dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    got = torch.autograd.grad(out, params, gout.bfloat16())
    assert got[0].dtype == torch.float32
    for g, r in zip(got, ref):
        torch.testing.assert_close(g.float(), r, atol=0.03 * r.abs().max().item(), rtol=0)


@pytest.mark.parametrize("slices", [None, [(0, 8), (16, 24)], [(16, 24), (0, 8)], [(8, 16)],
                                    [(0, 8), (8, 16), (16, 24)]])
def test_up_weight_places_each_B_at_its_slice_rows(slices):
    """The up-projection is the block-diagonal of the B's (column block i = adapter i) at the slice rows."""
    layer = randomize(LoraLinear(base_linear(), r=3, slices=slices))
    expected = torch.zeros(24, layer.num_adapters * 3)
    for i, (start, end) in enumerate(layer.slices):
        expected[start:end, 3 * i:3 * (i + 1)] = layer.B[i]
    assert torch.equal(layer.up_weight(), expected)
