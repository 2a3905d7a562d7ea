"""A pytest plugin that runs timm's own tests/test_models.py with adapters on (see test_timm_suite.py).

Every `timm.create_model` in those tests builds the model through aurora_vision's `aurora=` keyword (so
features_only, device=, dtype= and checkpoint_path go through our hook) and then randomises B: with B = 0
an adapter is the identity, and most contracts would hold without it doing anything.
"""
import timm
import timm.models
import torch

import aurora_vision as av

# timm registers these in its own pyproject; registered here so the copy run outside timm does not warn
TIMM_MARKERS = ("base", "cfg", "cfg_nonstd", "torchscript", "features", "fxforward", "fxbackward",
                "forward", "backward")


def adapted_create_model(create_model):
    def create(model_name, *args, **kwargs):
        model = create_model(model_name, *args, aurora=True, **kwargs)
        with torch.no_grad():
            for _, layer in av.adapter_layers(model):
                layer.B.normal_(std=0.02)  # on whatever device the model is, meta included
        return model
    return create


def pytest_configure(config):
    for marker in TIMM_MARKERS:
        config.addinivalue_line("markers", f"{marker}: a timm test group")
    # before timm's test module imports it (`from timm import create_model`)
    timm.create_model = timm.models.create_model = adapted_create_model(timm.models.create_model)
