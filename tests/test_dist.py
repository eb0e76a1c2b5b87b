"""The collectives' helpers: the tensor a collective reduces lives where its backend needs it."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist

from cockpit.dist import all_reduce_max, collective_device


def test_nccl_collectives_use_the_current_cuda_device(monkeypatch):
    # NCCL refuses CPU tensors: the agreement's all-reduce failed under it before.
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert collective_device("nccl") == torch.device("cuda", 1)


@pytest.mark.parametrize("backend", ["gloo", "mpi"])
def test_other_backends_use_the_cpu(backend):
    assert collective_device(backend) == torch.device("cpu")


def test_all_reduce_max_in_a_real_gloo_group():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        assert collective_device() == torch.device("cpu")
        assert all_reduce_max([1.0, 2.5, 0.0]) == [1.0, 2.5, 0.0]
    finally:
        dist.destroy_process_group()
