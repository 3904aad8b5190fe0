"""The end of a distributed run."""
import torch.distributed as dist


def destroy_process_group() -> None:
    """End the process group of a finished run, every rank together.

    mmengine's Runner never destroys it. A gloo group left alive until
    interpreter exit can abort its process in the group's destructor
    (``terminate called without an active exception``, SIGABRT) after all
    the work is done, and torchrun then reports the whole job as failed.
    The barrier lets every rank finish its last collective first. Does
    nothing outside a distributed run.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
