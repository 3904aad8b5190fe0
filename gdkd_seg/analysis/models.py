"""A teacher and a student from one config, and their head logits over a
data set, as the distiller sees them (the heads' outputs at logit
resolution, ground truth beside them)."""
from typing import Iterator, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor

from ..apis import init_student, teacher_config
from ..distillers.seg_distiller import SegDistiller


def load_config(config: Union[str, Config]) -> Config:
    return Config.fromfile(config) if isinstance(config, str) else config


def init_teacher(config: Union[str, Config], checkpoint: str,
                 device: str = 'cpu'):
    """The teacher of a distiller config (or the model of a plain one),
    loaded from ``checkpoint``, in eval mode."""
    return init_student(teacher_config(load_config(config)), checkpoint,
                        device)


def build_dataloader(cfg: Config, split: str = 'val',
                     data_root: Optional[str] = None,
                     batch_size: Optional[int] = None):
    """The config's ``{split}_dataloader``, optionally re-rooted."""
    from mmengine.runner import Runner
    loader = cfg[f'{split}_dataloader'].copy()
    if data_root is not None:
        loader.dataset.data_root = data_root
    if batch_size is not None:
        loader.batch_size = batch_size
    return Runner.build_dataloader(loader)


@torch.no_grad()
def head_logits(model, inputs: Tensor, head: str = 'decode_head') -> Tensor:
    """``(B, C, h, w)`` logits of one head at its own resolution."""
    return SegDistiller._head_logits(model, head, model.extract_feat(inputs))


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
