# The Fashion-MNIST teacher -> student, on the student's data and recipe
# (mirrors configs/cls/_base_/distill/). Method configs fill in
# distill_losses; tools/analysis_tools/cls_fashion_mnist_sweep.py points
# teacher_ckpt at the teacher it trained.
_base_ = '../student_resnet8w4_1xb64-5e_fashion-mnist-5k.py'
model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/../teacher_resnet8w8_1xb64-10e_fashion-mnist-5k.py',  # noqa: E501
    teacher_ckpt='work_dirs/fashion_mnist/teacher/epoch_10.pth',
    distill_losses=dict())
