"""Process-group housekeeping for the commands that run under ``torchrun`` / ``accelerate launch``."""

from __future__ import annotations


def close_process_group() -> None:
    """After a successful run under a launcher, wait for every process and close the group before exiting.

    A process that leaves while gloo's worker threads still run can abort at interpreter exit ("terminate
    called without an active exception", SIGABRT), so a run whose outputs were all written still fails at
    random. Called on success only: after an error the other processes may never reach the barrier, and the
    launcher tears them down anyway. Without a process group (one process) it does nothing.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
