_base_ = '../_base_/distill/resnet34_resnet18_8xb64-100e_in1k.py'
# Official values: ZaberKo/GDKD configs/imagenet/r34_r18/lskd.yaml
# LSKD: KD on logits z-scored per sample (Sun et al., CVPR 2024), T=2,
# 9 KD + 1 CE.
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=1.0))),
    distill_losses=dict(head=dict(type='KDLoss', temperature=2.0,
                                  standardize='global', loss_weight=9.0)))
