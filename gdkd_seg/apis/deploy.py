"""Run a (distilled) mmseg segmentor outside PyTorch: ONNX export,
onnxruntime inference, and the check that both give the same logits.

The exported graph takes what mmseg's loading pipeline gives the model: a
float ``(N, 3, H, W)`` batch of images in 0..255, in the channel order the
images were loaded in (BGR for ``LoadImageFromFile``). It applies the
segmentor's data preprocessor (channel flip, mean/std) and returns the
``(N, num_classes, H, W)`` logits that mmseg's whole-image ``predict``
returns for an unpadded input (``seg_logits``). onnx and onnxruntime are
the ``[deploy]`` extra (requirements/deploy.txt).
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

#: The ONNX opset of the export (onnxruntime >= 1.14 runs it).
OPSET = 17
INPUT_NAME, OUTPUT_NAME = 'images', 'logits'


class SegmentorLogits(nn.Module):
    """An mmseg ``EncoderDecoder`` as one tensor-to-tensor function, for
    export: images (``(N, 3, H, W)``, 0..255, loading order) to logits at
    the input's size, with the segmentor's own preprocessing.

    Args:
        segmentor (nn.Module): an mmseg segmentor in eval mode whose
            ``data_preprocessor`` is mmseg's ``SegDataPreProcessor``.
    """

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, images: Tensor) -> Tensor:
        preprocessor = self.segmentor.data_preprocessor
        if preprocessor.channel_conversion:
            images = images[:, [2, 1, 0]]
        if preprocessor._enable_normalize:
            images = (images - preprocessor.mean) / preprocessor.std
        # The size is read from the input, so a dynamic-shape export resizes
        # to whatever size it is given.
        return self.segmentor.encode_decode(
            images, [dict(img_shape=images.shape[2:])])


def export_onnx(segmentor: nn.Module,
                path: str,
                shape: Tuple[int, int],
                dynamic: bool = False,
                opset: int = OPSET) -> None:
    """Write ``segmentor`` as an ONNX graph (see :class:`SegmentorLogits`).

    Uses torch's TorchScript-based exporter (``dynamo=False``), which needs
    no onnxscript and handles mmseg's transformers (SegFormer) as they are.

    Args:
        segmentor (nn.Module): an mmseg segmentor, e.g. from
            :func:`gdkd_seg.apis.init_student`.
        path (str): the ``.onnx`` file to write.
        shape (tuple[int, int]): ``(H, W)`` of the traced input.
        dynamic (bool): make batch, height and width dynamic axes.
        opset (int): the ONNX opset version.
    """
    assert len(shape) == 2 and min(shape) > 0, \
        f'shape must be (H, W) with positive sides, got {shape}'
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'},
                        OUTPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'}}
    images = torch.rand(1, 3, *shape) * 255
    with torch.no_grad():
        torch.onnx.export(
            SegmentorLogits(segmentor.eval()), (images, ), path,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False)


def onnx_session(path: str, threads: Optional[int] = None):
    """An onnxruntime session on the CPU execution provider.

    Args:
        path (str): the ``.onnx`` file.
        threads (int | None): intra-op threads (None: onnxruntime's
            default, one per physical core).
    """
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError('onnxruntime is not installed; install the deploy '
                          "extra: pip install -e '.[deploy]'") from error
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def onnx_logits(session, images: np.ndarray) -> np.ndarray:
    """Run ``session`` on a float32 ``(N, 3, H, W)`` batch of images.

    Raises:
        RuntimeError: onnxruntime failed (its own error, with the input's
            shape, chained).
    """
    images = np.ascontiguousarray(images, np.float32)
    try:
        return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    except Exception as error:  # onnxruntime's errors derive from Exception
        raise RuntimeError(f'onnxruntime failed on input {images.shape}: '
                           f'{error}') from error


@torch.no_grad()
def mmseg_logits(segmentor: nn.Module, image: Tensor) -> Tensor:
    """The logits of mmseg's own test path for one ``(3, H, W)`` image:
    the data preprocessor, then ``predict`` (``seg_logits``,
    ``(num_classes, H, W)``)."""
    from mmseg.structures import SegDataSample
    size = tuple(image.shape[1:])
    meta = dict(img_shape=size, ori_shape=size, pad_shape=size)
    data = segmentor.data_preprocessor(
        dict(inputs=[image], data_samples=[SegDataSample(metainfo=meta)]),
        False)
    sample = segmentor.eval().predict(data['inputs'],
                                      data['data_samples'])[0]
    return sample.seg_logits.data


def compare_logits(reference: np.ndarray,
                   other: np.ndarray) -> Dict[str, float]:
    """How far ``other`` logits are from ``reference`` ones (same shape,
    ``(..., C, H, W)``).

    Returns:
        dict: ``max_abs`` (largest absolute difference), ``max_rel``
        (``max_abs`` over the largest absolute reference logit) and
        ``argmax_agreement`` (fraction of pixels whose class agrees).

    Raises:
        ValueError: the shapes differ or either holds NaN or inf.
    """
    if reference.shape != other.shape:
        raise ValueError(f'logit shapes differ: {reference.shape} vs '
                         f'{other.shape}')
    for name, logits in (('reference', reference), ('compared', other)):
        if not np.isfinite(logits).all():
            raise ValueError(f'the {name} logits are not all finite')
    max_abs = float(np.abs(reference - other).max())
    return dict(
        max_abs=max_abs,
        max_rel=max_abs / max(float(np.abs(reference).max()), 1e-12),
        argmax_agreement=float(
            (reference.argmax(-3) == other.argmax(-3)).mean()))


def check_onnx(segmentor: nn.Module,
               path: str,
               shapes: Sequence[Tuple[int, int]],
               seed: int = 0) -> Dict[str, float]:
    """Compare the ONNX graph at ``path`` with mmseg's own test path on a
    random image of each shape in ``shapes`` (worst case over them).

    Returns:
        dict: as :func:`compare_logits`, the largest differences and the
        smallest agreement.
    """
    session = onnx_session(path)
    generator = torch.Generator().manual_seed(seed)
    worst = dict(max_abs=0.0, max_rel=0.0, argmax_agreement=1.0)
    for shape in shapes:
        image = torch.rand(3, *shape, generator=generator) * 255
        found = compare_logits(
            mmseg_logits(segmentor, image).numpy(),
            onnx_logits(session, image[None].numpy())[0])
        worst = dict(
            max_abs=max(worst['max_abs'], found['max_abs']),
            max_rel=max(worst['max_rel'], found['max_rel']),
            argmax_agreement=min(worst['argmax_agreement'],
                                 found['argmax_agreement']))
    return worst
