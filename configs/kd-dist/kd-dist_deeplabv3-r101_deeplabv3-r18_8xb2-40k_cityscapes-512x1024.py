_base_ = '../_base_/distill/deeplabv3-r101_deeplabv3-r18_8xb2-40k_cityscapes-512x1024.py'  # noqa: E501
# KD-DIST: pixel-wise KD at T=1 plus DIST's intra-class relation with
# weight 1, the official `kd-dist` method (ZaberKo/seg-gdkd,
# losses/distiller/kd.py).
distill_loss = dict(type='KDLoss', temperature=1.0, intra_weight=1.0)
# Decode-head logits at 1/8 resolution; the auxiliary FCN head with
# weight 0.4, as the official trainer does for ResNet students
# (ZaberKo/seg-gdkd, train_kd.py).
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
