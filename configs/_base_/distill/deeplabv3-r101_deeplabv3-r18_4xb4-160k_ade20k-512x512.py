# Teacher: DeepLabV3-R101-D8 from mmseg's model zoo (ADE20K, 160k
# iterations, 45.00 val mIoU; mmseg's deeplabv3/metafile.yaml). Student:
# DeepLabV3-R18-D8 on its own data, schedule and runtime. Method configs fill
# in distill_losses.
_base_ = '../../baselines/deeplabv3-r18_4xb4-160k_ade20k-512x512.py'  # noqa: E501
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x512_160k_ade20k/deeplabv3_r101-d8_512x512_160k_ade20k_20200615_105816-b1f72b3b.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-160k_ade20k-512x512.py',  # noqa: E501
    teacher_ckpt=teacher_ckpt,
    distill_losses=dict())
