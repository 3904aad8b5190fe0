_base_ = '../_base_/distill/deeplabv3-r101_deeplabv3-mobilenetv2_4xb4-160k_ade20k-512x512.py'  # noqa: E501
# Pixel-wise KD at T=1: the official segmentation setting
# (ZaberKo/seg-gdkd, as in the CIRKD protocol).
distill_loss = dict(type='KDLoss', temperature=1.0)
# Decode-head logits at 1/8 resolution; mmseg's MobileNetV2 model has an
# auxiliary FCN head (mmseg's mobilenet_v2 config), distilled with weight
# 0.4 as the official trainer does for ResNet students (ZaberKo/seg-gdkd,
# train_kd.py; its MobileNetV2 students have no auxiliary head).
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
