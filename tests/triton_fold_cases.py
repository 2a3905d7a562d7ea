"""The Triton eval fold (triton_fold.py) against the torch form of the fold and the training (two-GEMM) form.
On the CPU: run as a script with TRITON_INTERPRET=1 (test_triton_kernels.py does). On a GPU the fold runs
by itself under bf16 autocast: test_layers.py's CUDA cases cover it there.

The interpreter casts to bf16 by truncation (the GPU rounds to nearest), so the comparisons allow a few
bf16 steps of the output's scale."""
import torch
from torch import nn

from aurora_vision.kernels import triton_fold
from aurora_vision.layers import AuroraLinear, LoraLinear

CASES = [  # class, in, out, r, slices, bias, dropout
    (AuroraLinear, 40, 72, 2, [(0, 24), (48, 72)], True, 0.0),   # q and v of a fused qkv
    (AuroraLinear, 40, 72, 3, None, False, 0.0),                 # one branch, K padded by 5
    (LoraLinear, 40, 72, 8, [(0, 24), (24, 48), (48, 72)], True, 0.0),
    (LoraLinear, 300, 310, 4, None, True, 0.0),                  # several D blocks, a partial last one
    (AuroraLinear, 40, 72, 2, None, True, 0.1),                  # dropout: identity in eval
]


def check() -> int:
    torch.manual_seed(0)
    for cls, d_in, d_out, r, slices, bias, dropout in CASES:
        layer = cls(nn.Linear(d_in, d_out, bias=bias), r=r, alpha=2 * r, slices=slices, dropout=dropout)
        with torch.no_grad():
            layer.B.normal_(0, 0.5)
        layer.eval()
        x = torch.randn(3, 45, d_in)
        two_gemm = layer(x)  # grad enabled: the training form, fp32
        folds = []
        layer._fold_kernels = lambda x, dtype: folds.append(dtype) or triton_fold
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            got = layer(x)
        assert folds == [torch.bfloat16] and got.dtype == torch.bfloat16, (folds, got.dtype)
        del layer._fold_kernels
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            torch_fold = layer(x)
        scale = two_gemm.abs().max().item()
        torch.testing.assert_close(got.float(), torch_fold.float(), atol=0.03 * scale, rtol=0)
        torch.testing.assert_close(got.float(), two_gemm, atol=0.03 * scale, rtol=0)
        # the pieces exactly: x copied (as the interpreter casts it), padding zero, the weight's columns
        dtype, k = torch.bfloat16, -(-(d_in + layer.num_adapters * r) // 8) * 8
        xg, z = triton_fold.fold_input(x, layer.A.flatten(0, 1), k, dtype)
        width = layer.num_adapters * r
        assert torch.equal(xg[..., d_in + width:], torch.zeros_like(xg[..., d_in + width:]))
        torch.testing.assert_close(xg[..., :d_in].float(), x, atol=0.01 * x.abs().max().item(), rtol=0)
        w = triton_fold.fold_weight(layer.base_layer.weight, layer.B, layer.slice_starts, layer.scaling, k, dtype)
        torch.testing.assert_close(w[:, d_in:d_in + width].float(), layer.scaling * layer.up_weight().detach(),
                                   atol=0.02 * layer.scaling, rtol=0.01)
        assert torch.equal(w[:, d_in + width:], torch.zeros_like(w[:, d_in + width:]))
    return len(CASES)


if __name__ == "__main__":
    print(f"ok {check()} cases")
