_base_ = '../_base_/distill/deeplabv3-r101_deeplabv3-r18_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
# GDKD-DIST: GDKD with the official Cityscapes setting k=3, T=1, w0=1,
# w1=1, w2=2 plus DIST's intra-class relation with weight 1, the
# official `gdkd-dist` method (ZaberKo/seg-gdkd,
# losses/distiller/gdkd.py).
distill_loss = dict(
    type='GDKDLoss', k=3, temperature=1.0, w0=1.0, w1=1.0, w2=2.0,
    intra_weight=1.0)
# Decode-head logits at 1/8 resolution; the auxiliary FCN head with
# weight 0.4, as the official trainer does for ResNet students
# (ZaberKo/seg-gdkd, train_kd.py).
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
