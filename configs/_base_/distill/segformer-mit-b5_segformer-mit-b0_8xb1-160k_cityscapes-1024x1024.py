# Teacher: SegFormer-MiT-B5 from mmseg's model zoo (Cityscapes, 160k
# iterations, 82.25 val mIoU; mmseg's segformer/metafile.yaml). Student:
# SegFormer-MiT-B0 on its own data, schedule and runtime (mmseg's SegFormer
# protocol, crop 1024x1024). Both heads predict at 1/4 of the input. Method
# configs fill in distill_losses (decode head only: SegFormer has no
# auxiliary head).
_base_ = '../../baselines/segformer-mit-b0_8xb1-160k_cityscapes-1024x1024.py'  # noqa: E501
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/segformer/segformer_mit-b5_8x1_1024x1024_160k_cityscapes/segformer_mit-b5_8x1_1024x1024_160k_cityscapes_20211206_072934-87a052ec.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::segformer/segformer_mit-b5_8xb1-160k_cityscapes-1024x1024.py',  # noqa: E501
    teacher_ckpt=teacher_ckpt,
    distill_losses=dict())
