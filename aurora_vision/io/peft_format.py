"""peft's LoRA folder format (`PeftModel.save_pretrained` / `from_pretrained`), written from our `lora` and
read into our `lora`.

Writing: n adapters on slices of one Linear (q and v of a fused qkv) are one LoRA of rank n*r on the whole
Linear: lora_A stacks the n A's (n*r x d_in), lora_B is the up-projection (out x n*r), each B at its slice
rows and zeros elsewhere (k gets exactly nothing). peft scales by lora_alpha / r (or / sqrt(r) with
rsLoRA), so lora_alpha = alpha * n (alpha * sqrt(n)) keeps our scaling. The classifier travels as peft's
`modules_to_save`. Keys are peft's: `base_model.model.<module>.lora_A.weight`, `base_model.model.head.weight`.

Reading: a peft LoRA becomes our `lora` on whole modules, targets the full names of the modules peft's
config selects in this model (peft's own matching), so the result merges, saves and counts as ours. peft
options our LoRA lacks (DoRA, per-module ranks, bias training, ...) are refused by name: load those with
`peft.PeftModel.from_pretrained`.
"""
import dataclasses
import json
import math
import re
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from ..config import LoraConfig
from ..inject import adapter_layers, head_parameter_names
from ..targets import classifier_names
from .architecture import FIELDS, architecture
from .checkpoint import (CONFIG_NAME, WEIGHTS_NAME, Checkpoint, as_json, base_model_name, check_fields,
                         read_weights)

PREFIX = "base_model.model."  # PeftModel -> LoraModel -> the timm model
METADATA_KEY = "aurora_vision"  # our base model and fingerprint, in the safetensors header peft ignores
METADATA_SCHEMA = {"base_model": str, "architecture": FIELDS}

# LoraConfig fields a folder may set freely: bookkeeping, or initialisation that loaded weights replace
IGNORED = {"task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision",
           "inference_mode", "init_lora_weights", "runtime_config", "megatron_core", "qalora_group_size"}
# fields read into our lora (targets, rank, scaling, dropout, classifier)
READ = {"r", "lora_alpha", "lora_dropout", "use_rslora", "target_modules", "exclude_modules",
        "layers_to_transform", "layers_pattern", "modules_to_save", "rank_pattern", "alpha_pattern"}
# initialisations that leave the base weights alone (PiSSA, OLoRA, LoftQ, ... change them, and an adapter
# saved without peft's conversion depends on the changed base)
INIT_KEEPING_BASE = (True, False, "gaussian", "orthogonal")


def _peft():
    try:
        import peft
    except ImportError:
        raise ImportError("peft's format needs peft: pip install peft") from None
    return peft


def write(model: nn.Module, state: dict, path: Path) -> None:
    if state["method"] != "lora":
        if state["method"] == "aurora":
            raise ValueError("AuroRA has no peft format: peft has no tuner with a nonlinearity between A and B. "
                             "Save it with format='aurora_vision' (the default) and load it with "
                             "aurora_vision.load_adapter")
        raise ValueError(f"format='peft' writes our 'lora' method; {state['method']!r} is saved with "
                         "format='aurora_vision' (the default)")
    peft = _peft()
    config = state["config"]
    tensors, widths = {}, {}
    for name, layer in adapter_layers(model):
        tensors[f"{PREFIX}{name}.lora_A.weight"] = layer.A.detach().flatten(0, 1)
        tensors[f"{PREFIX}{name}.lora_B.weight"] = layer.up_weight().detach()
        widths[name] = layer.num_adapters
    heads = [h for h in classifier_names(model) if next(model.get_submodule(h).parameters(), None) is not None]
    for head in heads:
        _check_suffix_unique(model, head)
        tensors.update({f"{PREFIX}{head}.{n}": p.detach() for n, p in model.get_submodule(head).named_parameters()})
    carried = {k[len(PREFIX):] for k in tensors} | {f"{name}.{p}" for name in widths for p in ("A", "B")}
    left = sorted(n for n, p in model.named_parameters() if p.requires_grad and n not in carried)
    if left:
        raise ValueError(f"format='peft' carries LoRA factors and the classifier; these trainable parameters "
                         f"would be lost: {left[:8]}. Save with format='aurora_vision'")
    if len(set(widths.values())) > 1:  # one rank for all: our presets slice every adapted qkv alike
        raise ValueError(f"format='peft' needs the same number of adapters on every module, got {widths}")
    n = next(iter(widths.values()))  # adapters per module: 2 for the q and v slices of qkv
    peft_config = peft.LoraConfig(
        r=config["r"] * n, lora_alpha=config["alpha"] * (math.sqrt(n) if config["use_rslora"] else n),
        lora_dropout=config["dropout"], use_rslora=config["use_rslora"], target_modules=sorted(widths),
        modules_to_save=heads or None)
    peft_config.inference_mode = True  # as PeftModel.save_pretrained writes it
    path.mkdir(parents=True, exist_ok=True)
    peft_config.save_pretrained(str(path), auto_mapping_dict={
        "base_model_class": type(model).__name__, "parent_library": type(model).__module__})
    ours = {"base_model": base_model_name(model), "architecture": architecture(model)}
    save_file({k: t.cpu().contiguous() for k, t in tensors.items()}, str(path / WEIGHTS_NAME),
              metadata={"format": "pt", METADATA_KEY: json.dumps(ours)})


def _check_suffix_unique(model: nn.Module, head: str) -> None:
    """peft wraps every module whose name ends with a `modules_to_save` entry: it must be the head alone."""
    clash = [n for n, _ in model.named_modules() if n.endswith(head) and n != head]
    if clash:
        raise ValueError(f"peft's modules_to_save={head!r} would also wrap {clash}; this model cannot be saved "
                         "in peft's format")


def read(folder: Path, saved: dict, model: nn.Module) -> Checkpoint:
    """`saved` is the parsed adapter_config.json (peft_type checked here); `model` is the plain timm model."""
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if saved.get("peft_type") != "LORA":
        raise ValueError(f"{config_file} is a peft {saved.get('peft_type')!r} adapter; load_adapter reads peft "
                         "LoRA folders only: load it with peft.PeftModel.from_pretrained")
    peft = _peft()
    try:
        config = peft.LoraConfig.from_pretrained(str(folder))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{config_file}: peft cannot read this LoRA config ({e})") from None
    _check_supported(config, config_file)
    targets = _targets(model, config, config_file)
    r, alpha = _rank_and_alpha(config, targets, config_file)
    heads = _saved_heads(model, config, config_file)
    raw, metadata = read_weights(weights_file)
    try:
        ours = as_json(dataclasses.asdict(LoraConfig(
            r=r, alpha=alpha, dropout=float(config.lora_dropout), use_rslora=bool(config.use_rslora),
            targets=[re.escape(t) for t in targets])))
    except ValueError as e:
        raise ValueError(f"{config_file}: {e}") from None
    base_model, arch = _recorded(metadata, weights_file)
    # without modules_to_save peft keeps the base model's head, and so does this load
    may_lack = frozenset() if heads else frozenset(head_parameter_names(model))
    return Checkpoint(folder, "lora", ours, _our_names(raw, heads, weights_file), base_model, arch, may_lack)


def _our_names(raw: dict, heads: list, weights_file: Path) -> dict:
    """peft's keys as our parameter names: lora_A / lora_B become A / B of one adapter on the module."""
    tensors = {}
    for key, tensor in raw.items():
        if not key.startswith(PREFIX):
            raise ValueError(f"{weights_file}: key {key!r} lacks peft's prefix {PREFIX!r}")
        name = key[len(PREFIX):]
        for peft_leaf, ours in ((".lora_A.weight", ".A"), (".lora_B.weight", ".B")):
            if name.endswith(peft_leaf):
                tensors[name[:-len(peft_leaf)] + ours] = tensor[None]
                break
        else:
            if not any(name.startswith(h + ".") for h in heads):
                raise ValueError(f"{weights_file}: {key!r} is neither a LoRA factor nor a parameter of "
                                 f"modules_to_save {heads}; our lora cannot load it")
            tensors[name] = tensor
    return tensors


def _recorded(metadata: dict, weights_file: Path) -> tuple:
    """(base model, architecture) where we wrote the folder; (None, None) where peft did."""
    if METADATA_KEY not in metadata:
        return None, None
    try:
        recorded = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"{weights_file}: metadata {METADATA_KEY!r} is not valid JSON ({e})") from None
    if not isinstance(recorded, dict):
        raise ValueError(f"{weights_file}: metadata {METADATA_KEY!r} is not a JSON object")
    check_fields(recorded, METADATA_SCHEMA, f"{weights_file} metadata {METADATA_KEY!r}")
    return recorded["base_model"], recorded["architecture"]


def _check_supported(config, config_file: Path) -> None:
    peft = _peft()
    default = peft.LoraConfig()
    unsupported = sorted(f.name for f in dataclasses.fields(config)
                         if f.name not in IGNORED | READ and getattr(config, f.name) != getattr(default, f.name))
    if config.init_lora_weights not in INIT_KEEPING_BASE:
        unsupported.append(f"init_lora_weights={config.init_lora_weights!r} (it changes the base weights)")
    if unsupported:
        raise ValueError(f"{config_file} uses peft LoRA options that aurora_vision's lora does not have: "
                         f"{unsupported}; load it with peft.PeftModel.from_pretrained instead")


def _targets(model: nn.Module, config, config_file: Path) -> list:
    """Module names peft's config selects in `model`, by peft's own rules (suffixes, regex, layer indices)."""
    from peft.tuners.tuners_utils import check_target_module_exists

    heads = classifier_names(model)
    # a model that has our lora already: its wrappers stand for their Linears, their insides are not modules
    wrapped = {n: layer.base_layer for n, layer in adapter_layers(model)}
    modules = {n: wrapped.get(n, m) for n, m in model.named_modules()
               if n and not any(n.startswith(w + ".") for w in wrapped)}
    targets = [n for n in modules if check_target_module_exists(config, n)]
    bad = [n for n in targets if not isinstance(modules[n], nn.Linear)
           or any(n == h or n.startswith(h + ".") for h in heads)]
    if bad:
        raise ValueError(f"{config_file} targets {bad}, which our lora does not adapt (only Linear layers "
                         "outside the classifier); load it with peft.PeftModel.from_pretrained instead")
    if not targets:
        raise ValueError(f"{config_file}: target_modules={config.target_modules!r} select no module of this "
                         f"{type(model).__name__}; is it the model the adapter was trained on?")
    return targets


def _rank_and_alpha(config, targets: list, config_file: Path) -> tuple[int, float]:
    """Our lora has one rank and one alpha: rank_pattern / alpha_pattern may only restate them."""
    from peft.utils.other import get_pattern_key

    pairs = {(config.rank_pattern.get(get_pattern_key(config.rank_pattern.keys(), t), config.r),
              config.alpha_pattern.get(get_pattern_key(config.alpha_pattern.keys(), t), config.lora_alpha))
             for t in targets}
    if len(pairs) != 1:
        raise ValueError(f"{config_file} gives modules different ranks or alphas {sorted(pairs)} "
                         "(rank_pattern / alpha_pattern); our lora has one: load it with peft.PeftModel.from_pretrained")
    r, alpha = pairs.pop()
    return int(r), float(alpha)


def _saved_heads(model: nn.Module, config, config_file: Path) -> list:
    """The modules peft's modules_to_save wraps in `model` (suffix match, as peft): the classifier only."""
    entries = config.modules_to_save or []
    wrapped = sorted({n for n, _ in model.named_modules() for m in entries if n and n.endswith(m)})
    heads = classifier_names(model)
    others = [n for n in wrapped if n not in heads]
    if others:
        raise ValueError(f"{config_file}: modules_to_save {entries} covers {others}, outside the classifier "
                         f"{list(heads)}; our lora trains only the classifier: load it with peft.PeftModel.from_pretrained")
    return wrapped
