_base_ = '../_base_/distill/deeplabv3-r101_deeplabv3-r18_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
# DKD-DIST: DKD with alpha 1, beta 2, T 1 plus DIST's intra-class
# relation with weight 1, the official `dkd-dist` method
# (ZaberKo/seg-gdkd, losses/distiller/dkd.py).
distill_loss = dict(
    type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0,
    intra_weight=1.0)
# Decode-head logits at 1/8 resolution; the auxiliary FCN head with
# weight 0.4, as the official trainer does for ResNet students
# (ZaberKo/seg-gdkd, train_kd.py).
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
