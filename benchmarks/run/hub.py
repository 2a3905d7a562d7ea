"""Pretrained weights from the Hugging Face hub without a network: huggingface_hub retries a dead connection
for most of a minute and then gives a generic error. When the hub cannot be reached (HF_HUB_OFFLINE, or
no TCP connection within a few seconds), weights load from the local cache only, and missing ones fail at
once with the local-file route."""
import contextlib
import socket
from functools import lru_cache
from urllib.parse import urlparse

from ..errors import UserError

PROBE_TIMEOUT_S = 3.0


class WeightsUnavailable(UserError):
    """Pretrained weights that can be neither found locally nor downloaded."""


@lru_cache(maxsize=None)  # once per process: a sweep builds many models
def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def hub_host() -> str:
    from huggingface_hub import constants
    return urlparse(constants.ENDPOINT).hostname or constants.ENDPOINT


def hub_offline() -> bool:
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return True
    url = urlparse(constants.ENDPOINT)
    return not reachable(url.hostname, url.port or (443 if url.scheme == "https" else 80))


@contextlib.contextmanager
def cache_only():
    """huggingface_hub's offline mode for the block: cached files load, nothing is requested or retried."""
    from huggingface_hub import constants
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def offline_message(name: str) -> str:
    return (f"pretrained weights for {name!r} are not in the local Hugging Face cache and {hub_host()} cannot be "
            "reached (offline). Use a local weights file: --set model.file=/path/weights.safetensors (in Python, "
            "timm.create_model(..., pretrained_cfg_overlay=dict(file=...))), or model.pretrained=false for "
            "random weights")
