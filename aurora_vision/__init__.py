"""aurora_vision: AuroRA, LoRA and other fine-tuning methods for timm vision transformers."""
from . import methods as _methods  # registers the built-in methods
from . import peft_methods as _peft_methods  # registers the peft baselines and bitfit
from . import timm_hook as _timm_hook  # enables timm.create_model(..., aurora=...)
from .accounting import count_parameters
from .config import AdapterConfig, AuroraConfig, LoraConfig, NoConfig
from .inject import adapter_layers, merge, merge_and_unload, unmerge
from .io import load_adapter, save_adapter
from .registry import applied_method, apply, get_method, list_methods, register_method
from .targets import PRESETS, model_family, resolve_targets

__version__ = "0.1.0"
