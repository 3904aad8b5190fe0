_base_ = '../_base_/distill/segformer-mit-b5_segformer-mit-b0_8xb2-160k_ade20k-512x512.py'  # noqa: E501
# DKD, split by the ground-truth class, with alpha 1, beta 2, T 1: the
# official segmentation DKD (ZaberKo/seg-gdkd, losses/distiller/dkd.py).
# (beta 8 is the DKD paper's CIFAR-100 value.)
distill_loss = dict(type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0)
# The decode head's logits (a SegFormer student has no auxiliary head).
model = dict(distill_losses=dict(decode_head=distill_loss))
