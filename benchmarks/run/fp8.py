"""`train.precision: fp8`: the frozen backbone's linear layers compute their forward and input-gradient GEMMs
in FP8 through torchao's float8 training (`torchao.float8.convert_to_float8_training`); the adapters, the head
and everything else keep bf16 autocast.

Which layers: every nn.Linear whose weight is frozen and whose dimensions are multiples of 16 (FP8 GEMMs need
them): the base layers inside the adapter layers and the plain q/k/v, proj and MLP linears. The adapters' A and B
are parameters, not nn.Linear, and the head trains, so neither is converted. Under full fine-tuning nothing is
frozen and nothing is converted; the record says how many layers were.

How the weights are cast: torchao's dynamic tensorwise scaling, every step (amax, scale, cast in the forward, and
again for the input gradient). A cast-once weight is not available through torchao 0.18: its scaling types are
`dynamic` and `disabled` (the static and delayed ones were removed), its inference-time float8 weight
(`Float8DynamicActivationFloat8WeightConfig`) has no backward (`derivative for aten::_scaled_mm is not
implemented`, pytorch/ao#4376), and a pre-cast weight is only reachable through its private
`Float8TrainingTensor`. The per-step cast reads the weights once more per pass; bf16 autocast (with its weight
cache off under CUDA graphs) casts them every step too. Keeping the weight in high precision also keeps
merging, the static-merge evaluation and saving working unchanged.

The weight-gradient GEMM: the frozen weights need none, so its operands are not cast (`disabled` scaling for
input and grad_output there). torchao's autograd function still computes it in high precision in eager mode
(autograd discards it); under torch.compile it is dead code and goes, which is one reason fp8 compiles the
model on CUDA (`implies_compile`); the other is that the casts only fuse under compile.

FP8 GEMMs need a CUDA GPU of compute capability >= 8.9 (Ada, Hopper and later). AURORA_VISION_FP8_EMULATE=1
runs torchao's emulation (dequantised matmuls) anywhere: for tests on CPU, recorded in the result. On CPU the
rest of the model then runs in fp32, not bf16: Float8Linear follows CUDA's autocast only (under CPU autocast
its weight-gradient matmul meets bf16 and fp32 operands).

Evaluation (no autograd) of an adapted layer takes its folded form (layers/adapter.py), one bf16 GEMM reading the
base weight directly, so there only the plain linears (proj, MLP, un-adapted q/k/v) run in FP8.
"""
import os
from importlib import metadata

import torch
from torch import nn

from ..errors import UserError

EMULATE_ENV = "AURORA_VISION_FP8_EMULATE"
MIN_CAPABILITY = (8, 9)
MULTIPLE = 16  # FP8 GEMMs (torch._scaled_mm) need both weight dimensions divisible by 16


def emulated() -> bool:
    """The internal/test switch: torchao's emulated FP8 matmuls instead of FP8 tensor cores."""
    return os.environ.get(EMULATE_ENV, "0") == "1"


def implies_compile(train_cfg: dict, device_type: str) -> bool:
    """fp8 on CUDA always runs compiled (see the module docstring); emulation keeps train.compile as set."""
    return train_cfg.get("precision") == "fp8" and device_type == "cuda" and not emulated()


def _torchao():
    try:
        import torchao.float8 as float8
    except ImportError as e:
        raise UserError(f"train.precision fp8 needs torchao, which is not importable ({e}); install it with "
                        "`pip install aurora-vision[fp8]`, or choose another train.precision") from e
    return float8


def torchao_version() -> str:
    try:
        return metadata.version("torchao")
    except metadata.PackageNotFoundError:  # a source checkout on the path
        import torchao
        return getattr(torchao, "__version__", "unknown")


def check_available(device: torch.device):
    """torchao's float8 module, where FP8 can run on `device`; a one-line UserError otherwise."""
    float8 = _torchao()
    check_device(device)
    return float8


def check_device(device: torch.device) -> None:
    """FP8 tensor cores or the emulation switch; a one-line UserError otherwise."""
    if emulated():
        return
    if device.type != "cuda":
        raise UserError(f"train.precision fp8 needs a CUDA GPU of compute capability >= 8.9; the run is on "
                        f"{device}: choose train.precision bf16 or fp32 there")
    capability = torch.cuda.get_device_capability(device)
    if capability < MIN_CAPABILITY:
        raise UserError(f"train.precision fp8 needs a CUDA GPU of compute capability >= 8.9 (Ada, Hopper or "
                        f"later); {torch.cuda.get_device_name(device)} has {capability[0]}.{capability[1]}: "
                        "choose train.precision bf16")


def convertible(module: nn.Module) -> bool:
    """A frozen nn.Linear whose weight dimensions are multiples of 16."""
    return (isinstance(module, nn.Linear) and not module.weight.requires_grad
            and module.in_features % MULTIPLE == 0 and module.out_features % MULTIPLE == 0)


def frozen_linear_config(float8, emulate: bool):
    """Tensorwise dynamic scaling (torchao's fastest recipe) for the output and input-gradient GEMMs; the
    weight-gradient GEMM's operands left uncast, since frozen weights take no gradient."""
    keep = lambda dtype: float8.CastConfig(scaling_type=float8.ScalingType.DISABLED, target_dtype=dtype)
    return float8.Float8LinearConfig(emulate=emulate,
                                     cast_config_input_for_grad_weight=keep(torch.float8_e4m3fn),
                                     cast_config_grad_output_for_grad_weight=keep(torch.float8_e5m2))


def convert_frozen_linears(model: nn.Module, device: torch.device) -> dict:
    """Swap the model's convertible linears for torchao's Float8Linear, in place, after the method is applied.
    Returns what the result records: torchao's version, how many linears were converted and how many frozen
    ones were left in bf16 (dimensions not multiples of 16), emulation, and how weights are cast."""
    float8 = check_available(device)
    frozen = sum(isinstance(m, nn.Linear) and not m.weight.requires_grad for m in model.modules())
    converted = []  # torchao asks the filter once per nn.Linear

    def take(module, fqn):
        if convertible(module):
            converted.append(fqn)
            return True
        return False

    emulate = emulated()
    float8.convert_to_float8_training(model, module_filter_fn=take, config=frozen_linear_config(float8, emulate))
    return {"torchao": torchao_version(), "linears_converted": len(converted),
            "frozen_linears_skipped": frozen - len(converted), "emulate": emulate,
            "scaling": "tensorwise, dynamic", "weight_cast": "every step (torchao 0.18 has no cast-once weight "
            "with a backward)", "grad_weight": "not cast (frozen weights)"}
