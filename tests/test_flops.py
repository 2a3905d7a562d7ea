import timm
import torch.nn.functional as F
from torch import nn

import aurora_vision as av
from aurora_vision.layers import AdaptiveNonlinearity
from aurora_bench.run.flops import count_macs

from fixtures import TINY


class LinearAttention(nn.Module):
    """x (1, 3, 4, 4) -> 16 tokens of 3 -> Linear(3, 12) -> q, k, v of 2 heads x 2 dims -> SDPA."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 12)

    def forward(self, x):
        t = x.flatten(2).transpose(1, 2)  # (1, L=16, 3)
        q, k, v = self.fc(t).view(1, 16, 3, 2, 2).permute(2, 0, 3, 1, 4)  # each (1, heads=2, 16, 2)
        return F.scaled_dot_product_attention(q, k, v).sum()


def test_exact_counts_on_tiny_net():
    got = count_macs(LinearAttention(), image_size=4)
    linear = 16 * 3 * 12
    attention = 2 * 16 * 16 * (2 + 2)  # heads x L x S x (d + d_v)
    assert got["gmacs"] * 1e9 == linear + attention


def test_sdpa_counted_like_explicit_attention():
    name, arch = TINY["vit"]
    fused = timm.create_model(name, num_classes=5, **arch)
    explicit = timm.create_model(name, num_classes=5, **arch)
    for blk in explicit.blocks:
        blk.attn.fused_attn = False
    a, b = count_macs(fused, 32), count_macs(explicit, 32)
    assert a["gmacs"] == b["gmacs"]
    assert "aten::scaled_dot_product_attention" not in a["uncounted_ops"]


def test_tanh_path_counted_exactly():
    """use_spline=False on z of shape (T, n, r): tanh (T n r), the H product (T n r r multiplies and as many
    adds in the sum), tanh (T n r)."""
    T, n, r = 50, 2, 3

    class Square(nn.Module):
        flop_modules = ("sigma",)  # as AuroraLinear declares it

        def __init__(self):
            super().__init__()
            self.sigma = AdaptiveNonlinearity(r, n, use_spline=False)

        def forward(self, x):  # (1, 3, 10, 10) -> (T, n, r)
            return self.sigma(x.reshape(T, n, r))

    got = count_macs(Square(), image_size=10)
    assert got["gmacs"] * 1e9 == T * n * r + 2 * T * n * r * r + T * n * r
    assert got["uncounted_ops"] == {}


def test_aurora_costs_lora_plus_its_nonlinearity():
    name, arch = TINY["vit"]
    lora = av.apply(timm.create_model(name, num_classes=5, **arch), "lora", r=2)
    aurora = av.apply(timm.create_model(name, num_classes=5, **arch), "aurora", r=2)
    a, l = count_macs(aurora, 32), count_macs(lora, 32)
    tokens = (32 // 8) ** 2 + 1
    per_token = 2 * 2 * (2 + 2 * 8)  # at least tanh x2 + r x r einsum + summed bases x W_s per adapter
    assert (a["gmacs"] - l["gmacs"]) * 1e9 >= 2 * tokens * per_token  # 2 blocks
    assert a["uncounted_ops"] == l["uncounted_ops"]  # nothing of the nonlinearity left uncounted


def test_vit_base_matches_published_count():
    """ViT-B/16 at 224: 17.58 GMACs once SDPA is counted (stock fvcore: 16.87)."""
    got = count_macs(timm.create_model("vit_base_patch16_224"), 224)
    assert round(got["gmacs"], 2) == 17.58
