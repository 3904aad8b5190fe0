_base_ = './_base_/distill_deeplabv3-r18_deeplabv3-r18w16_synthetic-cityscapes.py'  # noqa: E501
# As configs/gdkd3/: GDKD3 (top-1 / top-2..k / rest) with k=4, the official
# GDKD3 top-k (ZaberKo/GDKD), and T=1, w=(1, 1, 2), the official
# segmentation GDKD setting (ZaberKo/seg-gdkd), on the decode head's logits
# and on the auxiliary head with weight 0.4 (the CIRKD protocol).
distill_loss = dict(
    type='GDKD3Loss', k=4, temperature=1.0, w0=1.0, w1=1.0, w2=2.0)
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
