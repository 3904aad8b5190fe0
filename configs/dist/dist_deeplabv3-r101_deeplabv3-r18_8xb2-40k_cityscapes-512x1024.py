_base_ = '../_base_/distill/deeplabv3-r101_deeplabv3-r18_8xb2-40k_cityscapes-512x1024.py'  # noqa: E501
# DIST with the official segmentation setting beta=1, gamma=1, T=1
# (the default method of ZaberKo/seg-gdkd, losses/distiller/dist.py;
# hunto/DIST_KD segmentation/losses/dist_kd.py): inter-class plus
# intra-class relation, over the whole batch.
distill_loss = dict(
    type='DISTLoss', beta=1.0, gamma=1.0, temperature=1.0,
    per_image_intra=False)
# Decode-head logits at 1/8 resolution; the auxiliary FCN head with
# weight 0.4, as the official trainer does for ResNet students
# (ZaberKo/seg-gdkd, train_kd.py).
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
