_base_ = './_base_/distill_deeplabv3-r18_deeplabv3-r18w16_synthetic-cityscapes.py'  # noqa: E501
# As configs/dist/: DIST with the official segmentation setting beta=1,
# gamma=1, T=1 (ZaberKo/seg-gdkd; hunto/DIST_KD), on the decode head's
# logits and on the auxiliary head with weight 0.4 (the official trainer's
# for ResNet students).
distill_loss = dict(
    type='DISTLoss', beta=1.0, gamma=1.0, temperature=1.0,
    per_image_intra=False)
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
