_base_ = './_base_/distill_deeplabv3-r18_deeplabv3-r18w16_synthetic-cityscapes.py'  # noqa: E501
# As configs/kd/: pixel-wise KD at T=1, the official segmentation setting
# (ZaberKo/seg-gdkd), on the decode head's logits and on the auxiliary head
# with weight 0.4 (the CIRKD protocol).
distill_loss = dict(type='KDLoss', temperature=1.0)
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
