_base_ = '../_base_/distill/deeplabv3-r101_segformer-mit-b0_8xb1-160k_cityscapes-1024x1024.py'  # noqa: E501
# GDKD with the official Cityscapes setting k=3, T=1, w0=1, w1=1, w2=2
# (ZaberKo/seg-gdkd).
distill_loss = dict(
    type='GDKDLoss', k=3, temperature=1.0, w0=1.0, w1=1.0, w2=2.0)
# The decode head's logits (a SegFormer student has no auxiliary head).
model = dict(distill_losses=dict(decode_head=distill_loss))
