_base_ = '../_base_/distill/segformer-mit-b5_segformer-mit-b0_8xb2-160k_ade20k-512x512.py'  # noqa: E501
# GDKD with the official Cityscapes setting k=3, T=1, w0=1, w1=1, w2=2
# (ZaberKo/seg-gdkd); the authors published none for ADE20K.
distill_loss = dict(
    type='GDKDLoss', k=3, temperature=1.0, w0=1.0, w1=1.0, w2=2.0)
# The decode head's logits (a SegFormer student has no auxiliary head).
model = dict(distill_losses=dict(decode_head=distill_loss))
