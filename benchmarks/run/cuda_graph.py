"""Whole training steps (forward, loss, backward, AdamW) and forward passes replayed as CUDA graphs.

At the VTAB recipe's batch 64 a ViT step is bound by kernel launches in eager PyTorch: the GPU waits
for Python to issue each of about a thousand small kernels (benchmarks/RESULTS.md, Speed). A graph
replays the same kernels on the same memory with one launch, so the arithmetic is unchanged.

Rules the callers follow (PyTorch's "whole-network capture"): the optimizer is `capturable` with its
learning rates held in tensors (the scheduler fills them in place), autocast runs with its weight
cache off, and nothing in the step reads a value back to the host.
"""
import time

import torch


def adamw(groups: list, device: torch.device, graphs: bool) -> torch.optim.AdamW:
    """AdamW over parameter groups; for graphs capturable, each group's learning rate held in a tensor
    that a replayed step reads and the scheduler fills in place."""
    if graphs:
        groups = [{**g, "lr": torch.tensor(g["lr"], device=device)} for g in groups]
    return torch.optim.AdamW(groups, capturable=graphs)


def train_step(optimizer, loss_fn, x, y) -> torch.Tensor:
    """One optimizer step on a batch, returning its loss: what the eager loop runs and a graph records."""
    optimizer.zero_grad(set_to_none=True)  # in a graph, backward then allocates the grads in its pool
    loss = loss_fn(x, y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Copies of what a training step changes: trainable parameters, buffers, optimizer state."""
    tensors = [p for p in model.parameters() if p.requires_grad] + list(model.buffers())
    state = {id(p): {k: v.clone() for k, v in s.items() if torch.is_tensor(v)} for p, s in optimizer.state.items()}
    return {"tensors": [(t, t.detach().clone()) for t in tensors], "optimizer": state}


@torch.no_grad()
def restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, snap: dict) -> None:
    """Undo the warm-up steps in place (the graph keeps the addresses it captured). Optimizer state that
    the warm-up created is zeroed: AdamW's initial state is step 0 and zero moments."""
    for t, saved in snap["tensors"]:
        t.copy_(saved)
    for p, s in optimizer.state.items():
        saved = snap["optimizer"].get(id(p))
        for k, v in s.items():
            if torch.is_tensor(v):
                v.copy_(saved[k]) if saved is not None else v.zero_()


def capture(fn, args: tuple, warmup: int = 3):
    """Run `fn(*args)` `warmup` times on a side stream (lazy allocations, cuBLAS workspaces, compiles),
    then record one call into a graph. Returns (graph, outputs); `args` must stay the static inputs."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn(*args)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(*args)
    return graph, out


class GraphedTrainStep:
    """`step(x, y)` -> the batch's mean loss: forward, loss, backward and optimizer step as one graph.

    One graph per batch size (an epoch's tail batch is smaller), captured on first sight. The warm-up
    before a capture makes real updates, so parameters, optimizer state and the CUDA RNG are restored
    after it: the first replay is the step the eager loop would have taken. The returned loss is the
    graph's output tensor, overwritten by the next call. `capture_seconds` sums the captures (warm-up,
    recording and undo, synced: with train.compile the compile happens there), a run's one-off cost."""

    def __init__(self, model, optimizer, loss_fn, warmup: int = 3):
        self.model, self.optimizer, self.loss_fn, self.warmup = model, optimizer, loss_fn, warmup
        self.graphs = {}
        self.capture_seconds = 0.0

    def _step(self, x, y):
        return train_step(self.optimizer, self.loss_fn, x, y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        key = x.shape[0]
        if key not in self.graphs:
            torch.cuda.synchronize()  # once per capture: the steps queued before it are not its cost
            start = time.perf_counter()
            static = (x.clone(), y.clone())
            snap, rng = snapshot(self.model, self.optimizer), torch.cuda.get_rng_state()
            graph, loss = capture(self._step, static, self.warmup)  # restore below undoes the warm-up
            restore(self.model, self.optimizer, snap)
            torch.cuda.set_rng_state(rng)
            self.graphs[key] = (graph, static, loss)
            torch.cuda.synchronize()
            self.capture_seconds += time.perf_counter() - start
        graph, (sx, sy), loss = self.graphs[key]
        sx.copy_(x)
        sy.copy_(y)
        graph.replay()
        return loss


def graphed_forward(net, x: torch.Tensor, autocast, warmup: int = 3):
    """An inference callable replaying `net(x)` (no grad) as one graph; writes its input into `x`'s copy."""
    static = x.clone()

    @torch.no_grad()
    def forward(inp):
        with autocast():
            return net(inp)
    graph, out = capture(forward, (static,), warmup)

    def run(inp: torch.Tensor) -> torch.Tensor:
        static.copy_(inp)
        graph.replay()
        return out
    return run
