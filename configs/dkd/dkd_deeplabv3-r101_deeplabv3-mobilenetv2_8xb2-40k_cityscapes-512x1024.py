_base_ = '../_base_/distill/deeplabv3-r101_deeplabv3-mobilenetv2_8xb2-40k_cityscapes-512x1024.py'  # noqa: E501
# DKD, split by the ground-truth class, with alpha 1, beta 2, T 1: the
# official segmentation DKD (ZaberKo/seg-gdkd, losses/distiller/dkd.py).
# (beta 8 is the DKD paper's CIFAR-100 value.)
distill_loss = dict(type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0)
# Decode-head logits at 1/8 resolution only: the official trainer gives
# MobileNetV2 students no auxiliary head (ZaberKo/seg-gdkd, train_kd.py;
# the student config drops mmseg's).
model = dict(distill_losses=dict(decode_head=distill_loss))
