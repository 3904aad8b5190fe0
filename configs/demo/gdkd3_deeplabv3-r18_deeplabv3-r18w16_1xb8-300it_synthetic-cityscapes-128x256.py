_base_ = './_base_/distill_deeplabv3-r18_deeplabv3-r18w16_synthetic-cityscapes.py'  # noqa: E501
# GDKD with three groups (top-1 / top-2..k / rest); decode-head logits, and
# the auxiliary head with weight 0.4, as the other demo methods.
distill_loss = dict(
    type='GDKD3Loss', k=4, temperature=1.0, w0=1.0, w1=1.0, w2=2.0)
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
