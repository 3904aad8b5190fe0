# resnet34 teacher -> resnet18 student on Tiny-ImageNet, on the student
# baseline's data, schedule, runtime and ImageNet initialisation. Method
# configs fill in `distill_losses`. The teacher: fine-tune it first with
# configs/cls/baselines/resnet34_1xb64-100e_tiny-imagenet.py.
_base_ = '../../baselines/resnet18_1xb64-100e_tiny-imagenet.py'
model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/../../baselines/resnet34_1xb64-100e_tiny-imagenet.py',  # noqa: E501
    teacher_ckpt='work_dirs/resnet34_1xb64-100e_tiny-imagenet/epoch_100.pth',
    distill_losses=dict())
