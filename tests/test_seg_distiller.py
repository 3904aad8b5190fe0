"""SegDistiller: teacher handling, losses, checkpoints and build errors,
on the demo configs' small models (no data needed)."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import gdkd_seg  # noqa: F401
from gdkd_seg.apis import student_config

DEMO = 'configs/demo/'
GDKD_DEMO = DEMO + ('gdkd_deeplabv3-r18_deeplabv3-r18w16_1xb8-300it_'
                    'synthetic-cityscapes-128x256.py')
TEACHER_DEMO = DEMO + ('teacher_deeplabv3-r18_1xb8-300it_'
                       'synthetic-cityscapes-128x256.py')


def distiller_cfg(**overrides):
    cfg = copy.deepcopy(Config.fromfile(GDKD_DEMO).model)
    cfg.teacher_ckpt = None
    cfg.update(overrides)
    return cfg


def fake_batch(model, n=2, h=64, w=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        label = torch.randint(0, 19, (1, h, w), generator=g)
        label[:, :8] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                                 pad_shape=(h, w)))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, h, w), generator=g).float()
              for _ in range(n)]
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)


@pytest.fixture(scope='module')
def distiller():
    torch.manual_seed(0)
    model = MODELS.build(distiller_cfg())
    model.init_weights()
    return model


def test_teacher_is_frozen_in_eval_and_gets_no_gradient(distiller):
    distiller.train()
    assert distiller.student.training and not distiller.teacher.training
    assert not any(p.requires_grad for p in distiller.teacher.parameters())
    stats = {k: v.clone() for k, v in distiller.teacher.state_dict().items()}
    losses = distiller.loss(**fake_batch(distiller))
    assert set(losses) >= {
        'decode.loss_ce', 'aux.loss_ce', 'decode.loss_gdkd', 'aux.loss_gdkd'
    }
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert any(p.grad is not None for p in distiller.student.parameters())
    for k, v in distiller.teacher.state_dict().items():  # BN stats unmoved
        torch.testing.assert_close(v, stats[k])


def test_distill_loss_equals_the_loss_on_head_logits(distiller):
    data = fake_batch(distiller, seed=1)
    distiller.train()
    torch.manual_seed(0)
    losses = distiller.loss(**data)
    torch.manual_seed(0)  # the same dropout mask in the decode head
    with torch.no_grad():
        s_feats = distiller.student.extract_feat(data['inputs'])
        t_feats = distiller.teacher.extract_feat(data['inputs'])
        s_logits = distiller.student.decode_head(s_feats)
        t_logits = distiller.teacher.decode_head(t_feats)
    gt = torch.stack([s.gt_sem_seg.data for s in data['data_samples']])
    want = distiller.distill_losses['decode_head'](s_logits, t_logits, gt)
    assert losses['decode.loss_gdkd'].item() == pytest.approx(
        want.item(), rel=1e-4)
    assert distiller.distill_losses['auxiliary_head'].loss_weight == 0.4


def test_checkpoints_hold_the_student_only(distiller, tmp_path):
    state = distiller.state_dict()
    assert state and all(k.startswith('student.') for k in state)
    fresh = MODELS.build(distiller_cfg())
    result = fresh.load_state_dict(state, strict=True)
    assert not result.missing_keys
    for k, v in distiller.student.state_dict().items():
        torch.testing.assert_close(fresh.student.state_dict()[k], v)


def test_predict_runs_the_student_alone(distiller, monkeypatch):
    distiller.eval()
    data = fake_batch(distiller, seed=2)

    def fail(*args, **kwargs):
        raise AssertionError('the teacher ran during prediction')

    monkeypatch.setattr(distiller.teacher, 'extract_feat', fail)
    out = distiller(**data, mode='predict')
    assert out[0].pred_sem_seg.data.shape == (1, 64, 128)


def test_teacher_checkpoint_is_loaded_and_survives_init_weights(tmp_path):
    teacher_cfg = Config.fromfile(TEACHER_DEMO).model
    teacher = MODELS.build(teacher_cfg)
    torch.nn.init.constant_(teacher.decode_head.conv_seg.weight, 0.125)
    ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, ckpt)
    model = MODELS.build(distiller_cfg(teacher_ckpt=str(ckpt)))
    model.init_weights()
    assert torch.all(model.teacher.decode_head.conv_seg.weight == 0.125)


def test_teacher_autocast_runs_in_bf16():
    model = MODELS.build(distiller_cfg(teacher_autocast='bf16'))
    model.train()
    seen = []
    model.teacher.decode_head.register_forward_hook(
        lambda m, i, o: seen.append(o.dtype))
    losses = model.loss(**fake_batch(model))
    assert seen == [torch.bfloat16]
    assert torch.isfinite(losses['decode.loss_gdkd'])


def test_loss_warmup_ramps_by_iteration():
    from mmengine.logging import MessageHub
    model = MODELS.build(distiller_cfg(warmup_iters=10))
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', 4)
    assert model.loss_warmup_factor() == pytest.approx(0.5)
    hub.update_info('iter', 50)
    assert model.loss_warmup_factor() == 1.0
    hub.update_info('iter', 0)


def test_build_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match='teacher checkpoint'):
        MODELS.build(distiller_cfg(teacher_ckpt=str(tmp_path / 'no.pth')))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='bad.pth'):
        MODELS.build(distiller_cfg(teacher_ckpt=str(bad)))
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'foo.weight': torch.zeros(1)}}, other)
    with pytest.raises(RuntimeError, match='weights are missing'):
        MODELS.build(distiller_cfg(teacher_ckpt=str(other)))
    cfg = distiller_cfg()
    cfg.teacher = copy.deepcopy(Config.fromfile(TEACHER_DEMO).model)
    cfg.teacher.decode_head.num_classes = 10
    cfg.teacher.auxiliary_head.num_classes = 10
    with pytest.raises(ValueError, match='student predicts 19 classes, '
                       'the teacher 10'):
        MODELS.build(cfg)
    with pytest.raises(KeyError, match='head names'):
        MODELS.build(distiller_cfg(distill_losses=dict(
            neck=dict(type='KDLoss'))))
    with pytest.raises(FileNotFoundError, match='teacher config'):
        MODELS.build(distiller_cfg(teacher='configs/nope.py'))


def test_student_config_turns_a_distiller_config_into_plain_mmseg():
    cfg = student_config(Config.fromfile(GDKD_DEMO))
    assert cfg.model.type == 'EncoderDecoder'
    assert cfg.model.backbone.base_channels == 16
    assert cfg.model.data_preprocessor.size == (64, 128)
