# Teacher: DeepLabV3-R101-D8 from mmseg's model zoo (Pascal VOC 2012 + aug,
# 20k iterations, 78.70 val mIoU, mmseg's best VOC DeepLabV3; mmseg's
# deeplabv3/metafile.yaml). Student: DeepLabV3-MobileNetV2 on its own data,
# schedule and runtime. Method configs fill in distill_losses.
_base_ = '../../baselines/deeplabv3-mobilenetv2_4xb4-40k_voc12aug-512x512.py'  # noqa: E501
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x512_20k_voc12aug/deeplabv3_r101-d8_512x512_20k_voc12aug_20200617_010932-8d13832f.pth'  # noqa: E501
model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-20k_voc12aug-512x512.py',  # noqa: E501
    teacher_ckpt=teacher_ckpt,
    distill_losses=dict())
