# The demo teacher -> the demo student, on the student's data and schedule
# (mirrors configs/_base_/distill/). Method configs fill in distill_losses;
# tools/demo.py points teacher_ckpt at the teacher it trained.
_base_ = '../student_deeplabv3-r18w16_1xb8-300it_synthetic-cityscapes-128x256.py'  # noqa: E501
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/../teacher_deeplabv3-r18_1xb8-300it_synthetic-cityscapes-128x256.py',  # noqa: E501
    teacher_ckpt='work_dirs/demo/teacher/iter_300.pth',
    distill_losses=dict())
