"""Use gdkd_seg's losses from mmrazor's ``SingleTeacherDistill``.

List this module in a config's ``custom_imports``::

    custom_imports = dict(
        imports=['gdkd_seg.interop.mmrazor'], allow_failed_imports=False)

Importing it imports mmrazor through :func:`gdkd_seg.compat.mmrazor.
import_mmrazor` (which makes mmrazor 1.0.0 import on recent torch) and
registers gdkd_seg's losses in mmseg's ``MODELS``. From mmrazor's scope name
them with the ``mmseg.`` prefix (``type='mmseg.GDKDLoss'``): mmrazor has a
``DKDLoss`` of its own, for ``(N, C)`` logits without ignore masking.

The ground truth reaches the loss through a ``MethodOutputs`` recorder on
``mmseg.models.decode_heads.decode_head.BaseDecodeHead._stack_batch_gt``
(see :data:`GT_SEG_RECORDER`): the student's decode head stacks the batch's
label maps into a ``(B, 1, H, W)`` tensor while computing its own loss.
"""
import gdkd_seg  # noqa: F401  (compat fixes; registers the losses)
from gdkd_seg.compat.mmrazor import import_mmrazor

import_mmrazor()

#: Recorder config that captures the batch's ``(B, 1, H, W)`` label map.
#: Record 0 is the decode head's call; an auxiliary head adds record 1 (the
#: same labels).
GT_SEG_RECORDER = dict(
    type='MethodOutputs',
    source='mmseg.models.decode_heads.decode_head.BaseDecodeHead.'
    '_stack_batch_gt')
