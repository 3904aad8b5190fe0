# resnet110 teacher -> resnet32 student on CIFAR-100, on the student baseline's
# data, schedule and runtime. Method configs fill in `distill_losses`.
# The teacher: train configs/cls/baselines/resnet110_1xb64-240e_cifar100.py
# first, or convert mdistiller's released teacher with
# tools/model_converters/convert_mdistiller_cifar.py and point teacher_ckpt at
# it.
_base_ = '../../baselines/resnet32_1xb64-240e_cifar100.py'
model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/../../baselines/resnet110_1xb64-240e_cifar100.py',  # noqa: E501
    teacher_ckpt='work_dirs/resnet110_1xb64-240e_cifar100/epoch_240.pth',
    distill_losses=dict())
