_base_ = '../_base_/distill/deeplabv3-r101_deeplabv3-mobilenetv2_4xb4-160k_ade20k-512x512.py'  # noqa: E501
# DKD, split by the ground-truth class, with alpha 1, beta 2, T 1: the
# official segmentation DKD (ZaberKo/seg-gdkd, losses/distiller/dkd.py).
# (beta 8 is the DKD paper's CIFAR-100 value.)
distill_loss = dict(type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0)
# Decode-head logits at 1/8 resolution; mmseg's MobileNetV2 model has an
# auxiliary FCN head (mmseg's mobilenet_v2 config), distilled with weight
# 0.4 as the official trainer does for ResNet students (ZaberKo/seg-gdkd,
# train_kd.py; its MobileNetV2 students have no auxiliary head).
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
