"""Distributed data parallel in CPU processes (gloo), for torchrun without
CUDA.

mmengine reverts SyncBN to BN only for non-distributed runs, and torch's
``DistributedDataParallel`` refuses SyncBN layers in CPU modules
("SyncBatchNorm layers only work with GPU modules"). This wrapper reverts
them with mmengine's ``revert_sync_batchnorm`` before DDP sees the model;
each process then normalises over its own batch, as plain BN does. Selected by
``model_wrapper_cfg`` (see :func:`gdkd_seg.apis.config.prepare_cpu_run`).
"""
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from torch import nn


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for a model on the CPU.

    Args:
        module (nn.Module): the model; its SyncBN layers become BN.
        device_ids: ignored, as DDP requires for CPU modules (mmengine's
            Runner passes the local rank as a device id).
        **kwargs: the other arguments of ``MMDistributedDataParallel``
            (``broadcast_buffers``, ``find_unused_parameters``, ...).
    """

    def __init__(self, module: nn.Module, device_ids=None, **kwargs) -> None:
        super().__init__(
            module=revert_sync_batchnorm(module), device_ids=None, **kwargs)
