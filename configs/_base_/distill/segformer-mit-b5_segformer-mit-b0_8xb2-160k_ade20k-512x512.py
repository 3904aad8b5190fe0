# Teacher: SegFormer-MiT-B5 from mmseg's model zoo (ADE20K, 160k iterations,
# crop 512x512, 49.13 val mIoU; mmseg's segformer/metafile.yaml). Student:
# SegFormer-MiT-B0 on its own data, schedule and runtime (mmseg's SegFormer
# ADE20K protocol). Method configs fill in distill_losses (decode head only:
# SegFormer has no auxiliary head).
_base_ = '../../baselines/segformer-mit-b0_8xb2-160k_ade20k-512x512.py'  # noqa: E501
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/segformer/segformer_mit-b5_512x512_160k_ade20k/segformer_mit-b5_512x512_160k_ade20k_20210726_145235-94cedf59.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::segformer/segformer_mit-b5_8xb2-160k_ade20k-512x512.py',  # noqa: E501
    teacher_ckpt=teacher_ckpt,
    distill_losses=dict())
