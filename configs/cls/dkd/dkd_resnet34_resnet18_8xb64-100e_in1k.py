_base_ = '../_base_/distill/resnet34_resnet18_8xb64-100e_in1k.py'
# DKD, the official ImageNet setting: alpha 1, beta 0.5, T=1, the loss ramped
# in over the first epoch.
model = dict(
    distill_losses=dict(head=dict(
        type='DKDLoss', alpha=1.0, beta=0.5, temperature=1.0)),
    warmup_epochs=1)
