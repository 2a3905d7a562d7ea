"""Pretrained weights without a network: an unreachable hub fails at once with the local-file route, and
weights already in the local cache still load (no network in these tests: connections are refused)."""
import socket

import huggingface_hub.constants as hf_constants
import huggingface_hub.utils._http as hf_http
import pytest
import timm
import torch
from safetensors.torch import save_file

from benchmarks.run import hub
from benchmarks.run.model import build_model
from benchmarks.run.hub import WeightsUnavailable

MODEL = {"name": "vit_tiny_patch16_224", "pretrained": True, "file": None, "image_size": 224, "kwargs": {}}


@pytest.fixture
def unreachable(monkeypatch, tmp_path):
    """No connection succeeds, the hub cache is empty, huggingface_hub's retry waits are counted."""
    probes, waits = [], []

    def refuse(address, *args, **kwargs):
        probes.append(address)
        raise OSError("connection refused (test)")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(hf_http.time, "sleep", waits.append)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    hub.reachable.cache_clear()
    yield probes, waits
    hub.reachable.cache_clear()


def test_an_unreachable_hub_fails_at_once_naming_the_local_file_route(unreachable):
    probes, waits = unreachable
    with pytest.raises(WeightsUnavailable, match=r"huggingface.co cannot be reached \(offline\). Use a local weights "
                                                 r"file: --set model.file=/path/weights.safetensors"):
        build_model(MODEL, {"name": "linear"}, num_classes=3)
    assert probes == [("huggingface.co", 443)] and waits == []  # one probe, no retries
    assert hf_constants.HF_HUB_OFFLINE is False  # offline mode only for the attempt


def test_hf_hub_offline_skips_the_probe(unreachable, monkeypatch):
    probes, _ = unreachable
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsUnavailable, match="model.file="):
        build_model(MODEL, {"name": "linear"}, num_classes=3)
    assert probes == []


def test_cached_weights_still_load_without_a_network(unreachable, tmp_path):
    """The hub's cache layout: models--<org>--<name>/refs/main names the snapshot holding the file."""
    repo = timm.models.get_pretrained_cfg("vit_tiny_patch16_224").hf_hub_id
    weights = timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict()
    commit = "0" * 40
    folder = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    save_file(weights, str(folder / "snapshots" / commit / "model.safetensors"))
    model = build_model(MODEL, {"name": "linear"}, num_classes=3)
    assert torch.equal(model.blocks[0].attn.qkv.weight, weights["blocks.0.attn.qkv.weight"])


def test_a_missing_model_file_is_named():
    with pytest.raises(WeightsUnavailable, match="model.file /nowhere/w.safetensors does not exist"):
        build_model({**MODEL, "file": "/nowhere/w.safetensors"}, {"name": "linear"}, num_classes=3)
