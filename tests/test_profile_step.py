"""perf/profile_step: its kernel breakdown by kind, and a CPU run of the whole tool on a tiny ViT."""
import pytest

from aurora_bench.perf.profile_step import gemm_bytes, gemm_flops, gemm_table, kernel_breakdown, kernel_kind, main


@pytest.mark.parametrize("name, kind", [
    # names as an H100 profile of a compiled ViT-B/16 AuroRA step printed them
    ("nvjet_sm90_tst_192x192_64x4_2x1_v_bz_coopB_bias_TNN", "gemm"),
    ("void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x4_nn_align8>", "gemm"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_3", "attention"),
    ("fmha_cutlassB_bf16_aligned_64x64_k64_sm80", "attention"),  # memory-efficient attention: not a GEMM
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64", "convolution"),
    ("triton_poi_fused_gelu_gelu_backward_view_1", "inductor fused"),
    ("triton_poi_fused__to_copy_convert_element_type_3", "inductor fused"),  # not a convolution
    ("triton_per_fused__to_copy_add_native_layer_norm_native_layer_norm_backward_4", "inductor fused"),
    ("_sigma_fwd", "aurora sigma"),
    ("_sigma_bwd", "aurora sigma"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>", "optimizer"),
    ("Memcpy DtoD (Device -> Device)", "copy / fill"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>", "aten elementwise / reduce"),
    ("some_new_kernel", "other"),
])
def test_kernel_kind(name, kind):
    assert kernel_kind(name) == kind


def test_breakdown_sums_per_step_and_shares():
    rows = kernel_breakdown([("nvjet_a", 3000.0), ("triton_poi_fused_x", 1000.0), ("nvjet_b", 2000.0)], steps=2)
    assert rows == [("gemm", 2.5, pytest.approx(5 / 6)), ("inductor fused", 0.5, pytest.approx(1 / 6))]
    assert kernel_breakdown([], steps=3) == []


def test_profile_step_runs_on_cpu(capsys):
    main(["--model", "vit_tiny_patch16_224", "--model-kwargs",
          '{"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}',
          "--batch", "2", "--steps", "1", "--rows", "5"])
    out = capsys.readouterr().out
    assert "aurora r=2 qv batch 2, 1 train steps" in out
    assert "Kernel time per step by kind" not in out  # no GPU kernels on the CPU


def test_gemm_flops_from_recorded_shapes():
    assert gemm_flops("aten::mm", [[12608, 768], [768, 2304]]) == 2 * 12608 * 768 * 2304
    assert gemm_flops("aten::addmm", [[2304], [12608, 768], [768, 2304]]) == 2 * 12608 * 768 * 2304
    assert gemm_flops("aten::addmm", [[1, 8], [4, 3], [3, 8]]) == 2 * 4 * 3 * 8  # a 2-d bias is not a factor
    assert gemm_flops("aten::mm", [[4, 3], [5, 8]]) == 0.0  # shapes that do not chain: unknown, not a guess
    # inductor's extern_kernels calls, recorded with their out= (and addmm's beta, alpha) as inputs
    assert gemm_flops("aten::mm", [[128, 16], [16, 64], [128, 64]]) == 2 * 128 * 16 * 64
    assert gemm_flops("aten::addmm", [[64], [128, 32], [32, 64], [], [], [128, 64]]) == 2 * 128 * 32 * 64
    assert gemm_flops("aten::mm", []) == 0.0


def test_gemm_bytes_count_each_operand_once_in_bf16():
    # an adapter's weight gradient: gz^T (2 x 12608) by x (12608 x 768), a 2 x 768 product
    assert gemm_bytes("aten::mm", [[2, 12608], [12608, 768]]) == 2 * (2 * 12608 + 12608 * 768 + 2 * 768)
    assert gemm_bytes("aten::addmm", [[768], [4, 3], [3, 768]]) == 2 * (4 * 3 + 3 * 768 + 4 * 768 + 768)
    assert gemm_bytes("aten::mm", [[128, 16], [16, 64], [128, 64]]) == 2 * (128 * 16 + 16 * 64 + 128 * 64)  # out=
    assert gemm_bytes("aten::mm", [[4, 3], [5, 8]]) == 0.0


def test_gemm_table_orders_by_time_and_reports_rate():
    class Event:
        def __init__(self, key, shapes, us, count):
            self.key, self.input_shapes, self.self_device_time_total, self.count = key, shapes, us, count

    events = [Event("aten::mm", [[2, 12608], [12608, 768]], 900.0, 24),  # an adapter's weight gradient
              Event("aten::addmm", [[768], [12608, 768], [768, 768]], 3000.0, 36),
              Event("aten::add", [[4], [4]], 50.0, 3)]
    rows = gemm_table(events, steps=3)
    assert rows[2].startswith("| aten::addmm |") and rows[3].startswith("| aten::mm |") and len(rows) == 4
    assert "| 12 | 1.00 | 178 | 479 |" in rows[2]  # 36 calls x 2*12608*768*768 FLOP in 3 ms
    assert "| 8 | 0.30 | 1 | 518 |" in rows[3]  # 24 calls x ~19.4 MB in 0.9 ms: far below the memory's rate
