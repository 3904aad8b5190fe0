"""ClsDistiller: teacher handling, losses, warmup, checkpoints and build
errors, on the Fashion-MNIST configs' small models (no data needed)."""
import pytest
import torch
from cls_helpers import build, load_config, model_cfg
from cls_helpers import mmpretrain_scope  # noqa: F401  (autouse fixture)
from mmengine.logging import MessageHub

from gdkd_seg.apis import student_config

FM = 'configs/cls/fashion_mnist/'
SUFFIX = '_1xb64-5e_fashion-mnist-5k.py'
GDKD = FM + 'gdkd_resnet8w8_resnet8w4' + SUFFIX
DKD = FM + 'dkd_resnet8w8_resnet8w4' + SUFFIX
TEACHER = FM + 'teacher_resnet8w8_1xb64-10e_fashion-mnist-5k.py'


def fake_batch(model, n=4, num_classes=10, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n, ), generator=g)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    inputs = [
        torch.randint(0, 255, (1, 28, 28), generator=g).float()
        for _ in range(n)
    ]
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)


@pytest.fixture
def distiller():
    torch.manual_seed(0)
    model = build(GDKD)
    model.init_weights()
    return model


def set_progress(epoch=0, it=0):
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', epoch)
    hub.update_info('iter', it)


def test_teacher_is_frozen_in_eval_and_gets_no_gradient(distiller):
    set_progress(epoch=0, it=10_000)
    distiller.train()
    assert distiller.student.training and not distiller.teacher.training
    assert not any(p.requires_grad for p in distiller.teacher.parameters())
    stats = {k: v.clone() for k, v in distiller.teacher.state_dict().items()}
    losses = distiller.loss(**fake_batch(distiller))
    assert set(losses) == {'loss_cls', 'loss_gdkd'}
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert all(p.grad is not None for p in distiller.student.parameters())
    for k, v in distiller.teacher.state_dict().items():  # BN stats unmoved
        torch.testing.assert_close(v, stats[k])


def test_losses_are_the_heads_loss_and_the_loss_on_head_logits(distiller):
    set_progress(epoch=0, it=10_000)
    data = fake_batch(distiller, seed=1)
    distiller.train()
    losses = distiller.loss(**data)
    with torch.no_grad():
        s_logits = distiller.student.head(
            distiller.student.extract_feat(data['inputs']))
        t_logits = distiller.teacher.head(
            distiller.teacher.extract_feat(data['inputs']))
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    assert losses['loss_cls'].item() == pytest.approx(
        torch.nn.functional.cross_entropy(s_logits, labels).item(), rel=1e-4)
    loss_fn = distiller.distill_losses['head']
    assert (loss_fn.spec.cuts, loss_fn.temperature,
            loss_fn.spec.leaf_weights[-1]) == ((5, ), 4.0, 8.0)
    assert losses['loss_gdkd'].item() == pytest.approx(
        loss_fn(s_logits, t_logits, labels).item(), rel=1e-4)


def test_one_loss_step_runs_the_student_head_once(distiller):
    calls = []
    distiller.student.head.register_forward_hook(
        lambda m, i, o: calls.append(o.shape))
    distiller.train()
    distiller.loss(**fake_batch(distiller))
    assert calls == [(4, 10)]


def test_warmup_ramps_the_distillation_loss_only():
    model = build(DKD)
    model.train()
    data = fake_batch(model, seed=2)
    set_progress(it=10_000)
    full = model.loss(**data)
    set_progress(it=19)  # 20 of the config's 79 warmup iterations
    ramped = model.loss(**data)
    assert ramped['loss_dkd'].item() == pytest.approx(
        full['loss_dkd'].item() * 20 / 79, rel=1e-5)
    assert ramped['loss_cls'].item() == pytest.approx(
        full['loss_cls'].item(), rel=1e-6)


def test_epoch_warmup_follows_the_cifar_recipe():
    cfg = model_cfg('configs/cls/gdkd/gdkd_resnet56_resnet20_'
                    '1xb64-240e_cifar100.py')
    assert cfg.warmup_epochs == 20
    model = build(DKD, warmup_iters=0, warmup_epochs=20)
    factors = []
    for epoch in (0, 9, 19, 200):
        set_progress(epoch=epoch)
        factors.append(model.loss_warmup_factor())
    set_progress()
    assert factors == pytest.approx([1 / 20, 0.5, 1.0, 1.0])


def test_no_class_is_ignored():
    """The losses' default ignore_index (255, mmseg's) is a real ImageNet
    class: the distiller must not drop it."""
    from mmpretrain.registry import MODELS
    cfg = model_cfg(DKD)
    model = MODELS.build(cfg)
    loss_fn = model.distill_losses['head']
    assert loss_fn.ignore_index == -1
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 1000, generator=g), torch.randn(3, 1000, generator=g)
    labels = torch.full((3, ), 255)
    assert loss_fn(s, t, labels) > 0


def test_checkpoints_hold_the_student_only(distiller):
    state = distiller.state_dict()
    assert state and all(k.startswith('student.') for k in state)
    fresh = build(GDKD)
    fresh.load_state_dict(state, strict=True)
    for k, v in distiller.student.state_dict().items():
        torch.testing.assert_close(fresh.student.state_dict()[k], v)


def test_teacher_checkpoint_is_loaded_and_survives_init_weights(tmp_path):
    teacher = build(TEACHER)
    torch.nn.init.constant_(teacher.head.fc.weight, 0.125)
    ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, ckpt)
    model = build(GDKD, teacher_ckpt=str(ckpt))
    model.init_weights()
    assert torch.all(model.teacher.head.fc.weight == 0.125)


def test_predict_and_tensor_modes_run_the_student_alone(
        distiller, monkeypatch):
    distiller.eval()
    data = fake_batch(distiller, seed=3)

    def fail(*args, **kwargs):
        raise AssertionError('the teacher ran')

    monkeypatch.setattr(distiller.teacher, 'extract_feat', fail)
    out = distiller(**data, mode='predict')
    assert len(out) == 4 and out[0].pred_score.shape == (10, )
    assert distiller(data['inputs'], mode='tensor').shape == (4, 10)


def test_teacher_autocast_runs_in_bf16():
    model = build(GDKD, teacher_autocast='bf16')
    model.train()
    seen = []
    model.teacher.head.register_forward_hook(
        lambda m, i, o: seen.append(o.dtype))
    losses = model.loss(**fake_batch(model))
    assert seen == [torch.bfloat16]
    assert torch.isfinite(losses['loss_gdkd'])


def test_build_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(KeyError, match='dict\\(head=loss_cfg\\)'):
        build(GDKD, distill_losses=dict(neck=dict(type='KDLoss')))
    teacher = model_cfg(TEACHER)
    teacher.head.num_classes = 7
    with pytest.raises(
            ValueError, match='student predicts 10 classes, '
            'the teacher 7'):
        build(GDKD, teacher=teacher)
    with pytest.raises(FileNotFoundError, match='teacher checkpoint'):
        build(GDKD, teacher_ckpt=str(tmp_path / 'no.pth'))
    cfg = load_config(GDKD)
    del cfg.model.student.head.topk  # not an ArcFaceClsHead argument
    cfg.model.student.head.type = 'ArcFaceClsHead'
    with pytest.raises(TypeError, match='ArcFaceClsHead.*single-label'):
        build(cfg)


def test_student_config_turns_a_distiller_config_into_plain_mmpretrain():
    cfg = student_config(load_config(GDKD))
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.model.backbone.base_channels == 4
    assert cfg.data_preprocessor.mean == [72.94]
