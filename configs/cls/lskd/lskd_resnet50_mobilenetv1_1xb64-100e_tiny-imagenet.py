_base_ = '../_base_/distill/resnet50_mobilenetv1_1xb64-100e_tiny-imagenet.py'
# Official values: ZaberKo/GDKD configs/TL/tiny-imagenet/r50_mv1/lskd.yaml
# LSKD: KD on logits z-scored per sample (Sun et al., CVPR 2024), T=2,
# 9 KD + 0.5 CE.
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.5))),
    distill_losses=dict(head=dict(type='KDLoss', temperature=2.0,
                                  standardize='global', loss_weight=9.0)))
