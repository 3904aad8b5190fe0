_base_ = './_base_/distill_deeplabv3-r18_deeplabv3-r18w16_synthetic-cityscapes.py'  # noqa: E501
# LSKD on segmentation maps: the KD of configs/kd/ (T=1, the official
# segmentation setting, ZaberKo/seg-gdkd) on each pixel's logits z-scored
# over the classes (Sun et al., CVPR 2024; docs/method.md), on the decode
# head's logits and on the auxiliary head with weight 0.4 (the CIRKD
# protocol). No official segmentation LSKD exists; T stays the KD one's.
distill_loss = dict(type='KDLoss', temperature=1.0, standardize='global')
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
