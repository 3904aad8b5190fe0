_base_ = '../_base_/distill/deeplabv3-r101_segformer-mit-b0_8xb1-160k_cityscapes-1024x1024.py'  # noqa: E501
# Pixel-wise KD at T=1: the official segmentation setting
# (ZaberKo/seg-gdkd, as in the CIRKD protocol).
distill_loss = dict(type='KDLoss', temperature=1.0)
# The decode head's logits (a SegFormer student has no auxiliary head).
model = dict(distill_losses=dict(decode_head=distill_loss))
