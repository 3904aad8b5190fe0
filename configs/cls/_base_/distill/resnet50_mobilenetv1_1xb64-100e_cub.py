# resnet50 teacher -> mobilenetv1 student on CUB-200-2011, on the student
# baseline's data, schedule, runtime and ImageNet initialisation. Method
# configs fill in `distill_losses`. The teacher: fine-tune it first with
# configs/cls/baselines/resnet50_1xb64-100e_cub.py.
_base_ = '../../baselines/mobilenetv1_1xb64-100e_cub.py'
model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/../../baselines/resnet50_1xb64-100e_cub.py',  # noqa: E501
    teacher_ckpt='work_dirs/resnet50_1xb64-100e_cub/epoch_100.pth',
    distill_losses=dict())
