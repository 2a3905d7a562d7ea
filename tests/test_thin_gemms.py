"""perf/thin_gemms.py: the adapter branch's GEMMs at a model's qkv shapes, each timed, the weight gradients also
split along the tokens; the split form computes the same product."""
import json

import pytest
import torch
from torch import nn
from torch.profiler import profile

from aurora_bench.perf.profile_step import gemm_dims
from aurora_bench.perf.thin_gemms import branch_gemms, layer_shapes, main, split_product, using_blas
from aurora_vision.layers import AuroraLinear, LoraLinear

TINY = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}


def test_the_shapes_come_from_the_first_qkv_and_the_batchs_tokens():
    # 4 x 4 patches and the class token per image
    assert layer_shapes("vit_tiny_patch16_224", TINY, batch=4) == (4 * 17, 32, 96)
    assert layer_shapes("vit_small_patch14_dinov2", {"img_size": 28, "patch_size": 7, "depth": 2}, batch=2) \
        == (2 * 17, 384, 1152)


def test_every_gemm_is_timed_and_the_weight_gradients_split_where_the_tokens_divide(tmp_path, capsys):
    main(["--model", "vit_tiny_patch16_224", "--model-kwargs", json.dumps(TINY), "--batch", "4", "--device", "cpu",
          "--out", str(tmp_path)])
    res = json.loads((tmp_path / "thin_gemms.json").read_text())
    assert [r["gemm"] for r in res["gemms"]] == ["x A^T (down)", "out + g U^T (up, into the output)",
                                                 "gy U (grad of g)", "gz A (grad of x)", "gz^T x (grad of A)",
                                                 "gy^T g (grad of U)"]
    assert all(r["us"] > 0 for r in res["gemms"])
    split = {r["gemm"]: r.get("split_tried") for r in res["gemms"]}
    assert set(split["gz^T x (grad of A)"]) == {"4"} == set(split["gy^T g (grad of U)"])  # 68 tokens: 4 of 4..64
    grad_a = res["gemms"][4]
    assert (grad_a["m"], grad_a["k"], grad_a["n"], grad_a["bytes"]) == (4, 68, 32, 4 * (4 * 68 + 68 * 32 + 4 * 32))
    assert "| gz^T x (grad of A) | 4 x 68 x 32 |" in capsys.readouterr().out


@pytest.mark.parametrize("kind", [AuroraLinear, LoraLinear])
def test_the_six_gemms_are_those_autograd_runs_for_an_adapted_qkv(kind):
    """A qkv (32 -> 96) with adapters of rank 2 on q and v, 68 tokens, trained a step: every mm / addmm the
    profiler records is the frozen layer's own (forward, input gradient) or one of branch_gemms' six shapes."""
    torch.manual_seed(0)
    layer = kind(nn.Linear(32, 96), r=2, alpha=4, slices=[(0, 32), (64, 96)])
    layer.base_layer.requires_grad_(False)
    x = torch.randn(68, 32, requires_grad=True)
    with profile(record_shapes=True) as prof:
        layer(x).backward(torch.randn(68, 96))
    ran = {gemm_dims(e.key, e.input_shapes)[:3] for e in prof.key_averages(group_by_input_shape=True)
           if e.key in ("aten::mm", "aten::addmm")}
    branch = {gemm.dims for gemm in branch_gemms(68, 32, 96, 4)}
    assert len(branch) == 6 and ran - branch == {(68, 32, 96), (68, 96, 32)} and branch <= ran


def test_the_cublaslt_column_switches_torchs_blas_library_and_puts_it_back():
    before = torch.backends.cuda.preferred_blas_library()
    with pytest.raises(RuntimeError, match="inside"):
        with using_blas("cublaslt"):
            assert torch.backends.cuda.preferred_blas_library() == torch._C._BlasBackend.Cublaslt
            raise RuntimeError("inside")
    assert torch.backends.cuda.preferred_blas_library() == before


def test_the_split_form_is_the_same_product():
    torch.manual_seed(0)
    gz, x = torch.randn(68, 4), torch.randn(68, 32)
    for parts in (1, 4, 17):
        torch.testing.assert_close(split_product(gz, x, parts), gz.T @ x)
