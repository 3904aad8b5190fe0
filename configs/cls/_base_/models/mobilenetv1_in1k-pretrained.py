# MobileNet-V1 initialised from ImageNet-1k weights, as the transfer-learning
# recipes start. No model zoo has these weights for this network: train
# configs/cls/baselines/mobilenetv1_8xb64-100e_in1k.py (the official code loads
# its own ImageNet MobileNet-V1, mv1/student_100.pth). Dataset configs set
# `head.num_classes`.
_base_ = 'mobilenetv1.py'
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/mobilenetv1_8xb64-100e_in1k/epoch_100.pth',
            prefix='backbone')))
