# GDKD on the decode and auxiliary heads' logits, run by mmrazor's
# SingleTeacherDistill: DeepLabV3-R101 (mmseg's 80k Cityscapes checkpoint)
# -> DeepLabV3-R18, with mmseg's 80k schedule, after mmrazor's CWD example
# (configs/distill/mmseg/cwd/). Needs the 'mmrazor' extra; see docs/mmrazor.md.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    'mmseg::_base_/default_runtime.py'
]
# Makes mmrazor 1.0.0 import on recent torch and registers gdkd_seg's losses.
custom_imports = dict(
    imports=['gdkd_seg.interop.mmrazor'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'  # noqa: E501
teacher_cfg_path = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501
student_cfg_path = 'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501

# The official Cityscapes setting (ZaberKo/seg-gdkd: k=3, T=1, w=(1, 1, 2));
# head is distilled with weight 0.4, as in the CIRKD protocol.
gdkd = dict(
    type='mmseg.GDKDLoss', k=3, temperature=1.0, w0=1.0, w1=1.0, w2=2.0)
# Both heads' conv_seg outputs: (B, 19, H/8, W/8) logits, not upsampled.
head_logits = dict(
    logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'),
    aux_logits=dict(type='ModuleOutputs', source='auxiliary_head.conv_seg'))

model = dict(
    _scope_='mmrazor',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path=student_cfg_path, pretrained=False),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            **head_logits,
            # The student's decode head stacks the batch's label maps into a
            # (B, 1, H, W) tensor for its own loss; record it for ignore
            # masking (pixels labelled 255 contribute no distillation loss).
            gt_seg=dict(
                type='MethodOutputs',
                source='mmseg.models.decode_heads.decode_head.'
                'BaseDecodeHead._stack_batch_gt')),
        teacher_recorders=head_logits,
        distill_losses=dict(
            loss_gdkd=dict(**gdkd, loss_weight=1.0),
            loss_gdkd_aux=dict(**gdkd, loss_weight=0.4)),
        # loss_name=dict(<argument of the loss's forward>=<recorded data>)
        loss_forward_mappings=dict(
            loss_gdkd=dict(
                student_logits=dict(from_student=True, recorder='logits'),
                teacher_logits=dict(from_student=False, recorder='logits'),
                gt_seg=dict(from_student=True, recorder='gt_seg')),
            loss_gdkd_aux=dict(
                student_logits=dict(from_student=True, recorder='aux_logits'),
                teacher_logits=dict(from_student=False, recorder='aux_logits'),
                gt_seg=dict(from_student=True, recorder='gt_seg')))))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
