_base_ = '../_base_/distill/deeplabv3-r101_deeplabv3-r18_4xb4-160k_ade20k-512x512.py'  # noqa: E501
# Pixel-wise KD at T=1: the official segmentation setting
# (ZaberKo/seg-gdkd, as in the CIRKD protocol).
distill_loss = dict(type='KDLoss', temperature=1.0)
# Decode-head logits at 1/8 resolution; the auxiliary FCN head with
# weight 0.4 (the CIRKD protocol).
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
