# Teacher: DeepLabV3-R101-D8 from mmseg's model zoo (Cityscapes, 80k
# iterations, 80.20 val mIoU; mmseg's deeplabv3/metafile.yaml). Student:
# SegFormer-MiT-B0 on its own data, schedule and runtime (mmseg's SegFormer
# protocol, crop 1024x1024). The teacher's logits are at 1/8 of the input,
# the student's at 1/4: the losses resize the teacher's map to the student's
# grid. Method configs fill in distill_losses (decode head only: SegFormer
# has no auxiliary head).
_base_ = '../../baselines/segformer-mit-b0_8xb1-160k_cityscapes-1024x1024.py'  # noqa: E501
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',  # noqa: E501
    teacher_ckpt=teacher_ckpt,
    distill_losses=dict())
