"""Thin helpers over ``torch.distributed``: everything works unchanged without it."""

from __future__ import annotations

import datetime
import os
import subprocess
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` from every rank, in rank order (just ``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def collective_device(backend: str | None = None) -> torch.device:
    """Where a tensor for a collective of ``backend`` (the default group's when None) must live.

    NCCL only reduces CUDA tensors (on this process's current device); gloo, MPI and the others
    reduce CPU tensors.
    """
    if backend is None:
        backend = str(dist.get_backend())
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_max(values: list[float]) -> list[float]:
    """The element-wise maximum of ``values`` over all ranks (one small collective)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over all ranks, in place."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= get_world_size()
    return tensor


def init_distributed(launcher: str, backend: str | None = None, timeout_minutes: float = 30) -> None:
    """Join the process group that torchrun (``'pytorch'``) or SLURM (``'slurm'``) set up.

    Backend ``nccl`` on GPUs, ``gloo`` on CPU, unless given.
    """
    if is_distributed():
        return
    if launcher == "slurm":
        _slurm_environment()
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(
                f"launcher={launcher!r} but ${name} is not set: start the run with torchrun "
                "(`cockpit run cfg.py --nproc N`, or `torchrun --nproc-per-node N -m cockpit.launch cfg.py`) "
                "or under srun for launcher='slurm'"
            )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes))


def _slurm_environment() -> None:
    """Translate SLURM's variables into torch.distributed's (as MMEngine does)."""
    os.environ.setdefault("RANK", os.environ["SLURM_PROCID"])
    os.environ.setdefault("WORLD_SIZE", os.environ["SLURM_NTASKS"])
    os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
    if "MASTER_ADDR" not in os.environ:
        nodes = os.environ["SLURM_NODELIST"]
        first = subprocess.getoutput(f"scontrol show hostname {nodes} | head -n1").strip()
        os.environ["MASTER_ADDR"] = first
    os.environ.setdefault("MASTER_PORT", "29500")


def peak_memory_mb() -> float:
    """This process's peak memory in MiB: its GPU's allocations when it uses one, else its resident set."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def default_device() -> torch.device:
    """This process's GPU (``LOCAL_RANK`` under torchrun) when there is one, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def broadcast_tensors(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` on every rank with rank ``src``'s (no-op outside a distributed run)."""
    if is_distributed():
        for tensor in tensors:
            dist.broadcast(tensor, src)


def default_store(timeout_s: float = 5.0) -> Any | None:
    """A client of the default process group's key-value store (torchrun's TCPStore), for use from
    another thread; None outside a distributed run or when the store cannot be cloned.

    Setting and reading keys needs no collective, so it still works while a rank hangs and the
    others wait for it in one. The clone has its own connection and a short timeout: a watcher
    thread that uses it never waits long on a store that is gone.
    """
    if not is_distributed():
        return None
    try:
        store = dist.distributed_c10d._get_default_store().clone()  # private, but stable since torch 1.x
        store.set_timeout(datetime.timedelta(seconds=timeout_s))
    except (AttributeError, RuntimeError, NotImplementedError):
        return None
    return store
