"""One run on several GPUs with DDP, launched by torchrun:

    torchrun --nproc_per_node 4 -m aurora_bench.cli run configs/paper.yaml --task cifar100 --method full ...

Every rank draws the same batch order and takes its slice of each global batch, so the global batch size,
the learning-rate schedule and (when every batch splits evenly) the gradients are those of a single-process
run. Only rank 0 logs and writes the result. Without torchrun's environment everything here is a no-op.
"""
import os

import torch
import torch.distributed as dist


def init() -> tuple[int, int]:
    """(rank, world size); starts the process group when torchrun launched us with WORLD_SIZE > 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def local_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not dist.is_initialized():
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def shard(*tensors):
    """This rank's slice of a global batch."""
    if not dist.is_initialized():
        return tensors
    rank, world = dist.get_rank(), dist.get_world_size()
    return tuple(t[rank::world] for t in tensors)


def all_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
