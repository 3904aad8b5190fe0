_base_ = './_base_/distill_deeplabv3-r18_deeplabv3-r18w16_synthetic-cityscapes.py'  # noqa: E501
# As configs/dkd/: the official segmentation DKD, alpha 1, beta 2, T 1
# (ZaberKo/seg-gdkd, losses/distiller/dkd.py), on the decode head's logits
# and on the auxiliary head with weight 0.4 (the CIRKD protocol).
distill_loss = dict(type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0)
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
