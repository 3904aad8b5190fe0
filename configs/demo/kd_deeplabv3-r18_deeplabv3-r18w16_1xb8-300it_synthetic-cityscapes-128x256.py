_base_ = './_base_/distill_deeplabv3-r18_deeplabv3-r18w16_synthetic-cityscapes.py'  # noqa: E501
# As configs/kd/: decode-head logits, and the auxiliary head with weight 0.4.
distill_loss = dict(type='KDLoss', temperature=1.0)
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
