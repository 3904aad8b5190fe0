_base_ = '../_base_/distill/deeplabv3-r101_deeplabv3-mobilenetv2_8xb2-40k_cityscapes-512x1024.py'  # noqa: E501
# Pixel-wise KD at T=1: the official segmentation setting
# (ZaberKo/seg-gdkd, as in the CIRKD protocol).
distill_loss = dict(type='KDLoss', temperature=1.0)
# Decode-head logits at 1/8 resolution only: the official trainer gives
# MobileNetV2 students no auxiliary head (ZaberKo/seg-gdkd, train_kd.py;
# the student config drops mmseg's).
model = dict(distill_losses=dict(decode_head=distill_loss))
