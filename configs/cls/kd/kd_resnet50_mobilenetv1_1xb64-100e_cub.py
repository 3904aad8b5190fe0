_base_ = '../_base_/distill/resnet50_mobilenetv1_1xb64-100e_cub.py'
# Official values: ZaberKo/GDKD configs/TL/cub2011/r50_mv1/kd.yaml
# KD: T=1, 0.5 KD + 0.5 CE.
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.5))),
    distill_losses=dict(head=dict(type='KDLoss', temperature=1.0,
                                  loss_weight=0.5)))
