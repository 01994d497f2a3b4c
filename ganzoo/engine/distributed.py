"""Data-parallel training under `torchrun`: process group set-up, gradient averaging, buffer sync.

Like stylegan2-ada, the engine averages gradients itself (one flattened all-reduce per update step) instead of
wrapping networks in DistributedDataParallel: a GAN step runs networks it does not update (D inside the G step,
G inside the D step), which DDP's reducer cannot follow without `find_unused_parameters`. The result is the
same synchronous data parallelism, and plugins need no change.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn


@dataclasses.dataclass(frozen=True)
class DistState:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistState:
    """The rank layout torchrun announces through RANK, WORLD_SIZE and LOCAL_RANK (single process otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistState()
    return DistState(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(state: DistState, device: torch.device) -> None:
    """Join the process group torchrun prepared: NCCL on CUDA, gloo on the CPU."""
    if state.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def broadcast_module(module: nn.Module, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters (and buffers) to every rank."""
    tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
    for tensor in tensors:
        dist.broadcast(tensor.data, src=0)


def average_gradients(modules: Iterable[nn.Module], world_size: int) -> None:
    """Average the gradients of `modules` over all ranks with one flattened all-reduce."""
    grads = [p.grad for m in modules for p in m.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world_size)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def all_reduce_mean(values: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of a small tensor over ranks (loss logs; a NaN on any rank is seen by all)."""
    values = values.clone()
    dist.all_reduce(values)
    return values / world_size


def shutdown(state: DistState) -> None:
    if state.enabled and dist.is_initialized():
        dist.destroy_process_group()
