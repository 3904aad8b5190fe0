"""What the analysis tools share: a config's data, batches as a model
sees them, and one head's logits as the distiller reads them (at logit
resolution, ground truth beside them). The models come from
:func:`gdkd_seg.apis.init_teacher` and :func:`gdkd_seg.apis.init_student`."""
from typing import Iterator, Optional, Tuple

import torch
from mmengine.config import Config
from torch import Tensor

from ..distillers.seg_distiller import SegDistiller


def build_dataloader(cfg: Config, split: str = 'val',
                     data_root: Optional[str] = None):
    """The config's ``{split}_dataloader``, optionally re-rooted."""
    from mmengine.runner import Runner
    loader = cfg[f'{split}_dataloader'].copy()
    if data_root is not None:
        loader.dataset.data_root = data_root
    return Runner.build_dataloader(loader)


@torch.no_grad()
def infer_head_logits(model, inputs: Tensor,
                      head: str = 'decode_head') -> Tensor:
    """Run ``model``'s backbone and one head on ``inputs`` without gradient:
    ``(B, C, h, w)`` logits at the head's own resolution
    (:meth:`SegDistiller.head_logits`)."""
    return SegDistiller.head_logits(model, head, model.extract_feat(inputs))


def iterate_batches(model, dataloader, max_batches: Optional[int] = None
                    ) -> Iterator[Tuple[Tensor, Tensor, list]]:
    """Yield ``(inputs, gt, images)`` per batch: the inputs after ``model``'s
    data preprocessor (test mode), the ``(B, 1, H, W)`` label maps and the
    RGB uint8 images."""
    for i, data in enumerate(dataloader):
        if max_batches is not None and i >= max_batches:
            return
        images = [x.permute(1, 2, 0).numpy()[..., ::-1].copy()
                  for x in data['inputs']]
        data = model.data_preprocessor(data, False)
        gt = torch.stack([s.gt_sem_seg.data for s in data['data_samples']])
        yield data['inputs'], gt, images


def add_data_args(parser) -> None:
    """The flags both analysis tools share: what to run over, and where."""
    parser.add_argument('--max-batches', type=int,
                        help='stop after this many batches')
    parser.add_argument('--split', default='val',
                        choices=['train', 'val', 'test'],
                        help="which of the config's dataloaders to use")
    parser.add_argument('--data-root', help="override the data set's root")
    parser.add_argument('--head', default='decode_head',
                        choices=['decode_head', 'auxiliary_head'],
                        help='whose logits to analyse')
    parser.add_argument('--device', default='cpu')
