_base_ = '../_base_/distill/segformer-mit-b5_segformer-mit-b0_8xb2-160k_ade20k-512x512.py'  # noqa: E501
# Pixel-wise KD at T=1: the official segmentation setting
# (ZaberKo/seg-gdkd, as in the CIRKD protocol).
distill_loss = dict(type='KDLoss', temperature=1.0)
# The decode head's logits (a SegFormer student has no auxiliary head).
model = dict(distill_losses=dict(decode_head=distill_loss))
