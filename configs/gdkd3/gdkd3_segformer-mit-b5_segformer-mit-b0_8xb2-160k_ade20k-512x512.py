_base_ = '../_base_/distill/segformer-mit-b5_segformer-mit-b0_8xb2-160k_ade20k-512x512.py'  # noqa: E501
# GDKD3 (top-1 / top-2..k / rest), the paper's variant for transformer
# teachers. k=4: the official GDKD3 top-k (ZaberKo/GDKD); T=1 and
# w=(1, 1, 2): the official segmentation GDKD setting (ZaberKo/seg-gdkd,
# which has no GDKD3). The authors' ViT setting (ZaberKo/vit-gdkd,
# config/gdkd3.yaml: k=5, T=1, w=(1, 1, 1)) is the documented option,
# see configs/gdkd3/README.md.
distill_loss = dict(
    type='GDKD3Loss', k=4, temperature=1.0, w0=1.0, w1=1.0, w2=2.0)
# The decode head's logits (a SegFormer student has no auxiliary head).
model = dict(distill_losses=dict(decode_head=distill_loss))
