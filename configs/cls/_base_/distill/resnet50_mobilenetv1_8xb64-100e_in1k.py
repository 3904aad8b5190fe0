# ResNet-50 teacher (mmpretrain model zoo, 76.55 top-1; the official code
# loads torchvision's, 76.13) -> MobileNet-V1 student on ImageNet-1k, on the
# student baseline's data, schedule and runtime. Method configs fill in
# `distill_losses`.
_base_ = '../../baselines/mobilenetv1_8xb64-100e_in1k.py'
teacher_ckpt = 'https://download.openmmlab.com/mmclassification/v0/resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher='mmpretrain::resnet/resnet50_8xb32_in1k.py',
    teacher_ckpt=teacher_ckpt,
    distill_losses=dict())
