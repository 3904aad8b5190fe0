_base_ = '../_base_/distill/deeplabv3-r101_pspnet-r18_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
# Decode-head logits at 1/8 resolution; the auxiliary FCN head with weight 0.4.
distill_loss = dict(type='DKDLoss', alpha=1.0, beta=8.0, temperature=1.0)
model = dict(
    distill_losses=dict(
        decode_head=distill_loss,
        auxiliary_head=dict(distill_loss, loss_weight=0.4)))
