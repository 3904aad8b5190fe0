"""A linear model and eight fixed inputs, registered in mmengine's root
registries so that a config can name them: runs through the real tools
(tools/train.py, tools/dist_train.sh) in seconds."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS
from torch.utils.data import Dataset


@MODELS.register_module()
class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        return {'loss': out.pow(2).mean()} if mode == 'loss' else out


@DATASETS.register_module()
class ToyInputs(Dataset):
    """Eight fixed 2-vectors."""

    def __init__(self) -> None:
        self.inputs = torch.randn(
            8, 2, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=self.inputs[index])
