# Teacher: DeepLabV3-R101-D8 from mmseg's model zoo (Cityscapes, 80k
# iterations, 80.20 val mIoU; mmseg's deeplabv3/metafile.yaml). Student:
# PSPNet-R18-D8 on its own data, schedule and runtime. Method configs fill
# in distill_losses.
_base_ = '../../baselines/pspnet-r18_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',  # noqa: E501
    teacher_ckpt=teacher_ckpt,
    distill_losses=dict())
