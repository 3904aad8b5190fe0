# ResNet-34 teacher (mmpretrain model zoo, 73.62 top-1) -> ResNet-18 student
# on ImageNet-1k, on the student baseline's data, schedule and runtime.
# Method configs fill in `distill_losses`.
_base_ = '../../baselines/resnet18_8xb64-100e_in1k.py'
teacher_ckpt = 'https://download.openmmlab.com/mmclassification/v0/resnet/resnet34_8xb32_in1k_20210831-f257d4e6.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher='mmpretrain::resnet/resnet34_8xb32_in1k.py',
    teacher_ckpt=teacher_ckpt,
    distill_losses=dict())
