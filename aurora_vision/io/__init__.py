"""Adapter checkpoints: save_adapter / load_adapter, our format and peft's LoRA format."""
from .architecture import architecture
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, base_model_name
from .save_load import load_adapter, save_adapter
