_base_ = './_base_/distill_deeplabv3-r18_deeplabv3-r18w16_synthetic-cityscapes.py'  # noqa: E501
# As configs/gdkd-dist/: GDKD with the official Cityscapes setting k=3, T=1,
# w0=1, w1=1, w2=2 plus DIST's intra-class relation with weight 1, the
# official `gdkd-dist` method (ZaberKo/seg-gdkd), on the decode head's
# logits and on the auxiliary head with weight 0.4.
distill_loss = dict(
    type='GDKDLoss', k=3, temperature=1.0, w0=1.0, w1=1.0, w2=2.0,
    intra_weight=1.0)
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
