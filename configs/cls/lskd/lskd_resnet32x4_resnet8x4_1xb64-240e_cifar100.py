_base_ = '../_base_/distill/resnet32x4_resnet8x4_1xb64-240e_cifar100.py'
# Official values: ZaberKo/GDKD configs/cifar100/lskd/res32x4_res8x4.yaml
# (mdistiller/engine/cfg.py's LSKD defaults)
# LSKD: KD on logits z-scored per sample (Sun et al., CVPR 2024), T=2,
# 9 KD + 0.1 CE.
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_losses=dict(head=dict(type='KDLoss', temperature=2.0,
                                  standardize='global', loss_weight=9.0)))
