"""Every shipped config, checked against what it says it is.

* It parses with its ``mmseg::`` / ``mmpretrain::`` bases, and its file name
  follows the scheme of configs/README.md; each field of the name (method,
  teacher, student, GPUs x batch, schedule, data set, crop) is checked
  against the content.
* Its folder has a README and a metafile.yaml that lists exactly the
  folder's configs, with their data, batch, teacher (config and weights as
  published in mmseg's model zoo), results only where measured here, and
  published numbers (``Published Results``) with their source, as the
  folder's README gives them.
* Distillation losses name every parameter; segmentation ones carry the
  official segmentation settings.
* Segmentation: per teacher/student pair and data set the distiller is built
  once (per student model where protocols differ), every config of the pair
  takes a training step on a tiny synthetic batch (the plain KD value
  checked against a float64 computation with the teacher's map resized to
  the student's grid), and nothing touches mmcv-lite's stand-in ops. One
  config per pair, and one of DIST and of each ``*-dist`` method, trains
  through mmengine's Runner on generated Cityscapes-format data exactly as
  tools/train.py does (slow) and saves a checkpoint without the teacher.
  The 8xb2-40k MobileNetV2 students have no auxiliary head. Classification
  models build without the stand-in ops (test_cls_configs.py trains them).
"""
import argparse
import ast
import copy
import functools
import glob
import json
import os.path as osp
import re
import statistics
import sys
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as nnf
import yaml
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from gdkd_seg.apis import load_config
from gdkd_seg.compat.mmcv_ops import has_compiled_mmcv_ops
from gdkd_seg.datasets.synthetic_cityscapes import \
    generate_synthetic_cityscapes
from gdkd_seg.distillers import resolve_model_cfg
from reference import zscore

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(p, ROOT).split(osp.sep))
SEG_CONFIGS = [p for p in CONFIGS if not p.startswith('configs/cls/')]
CLS_CONFIGS = [p for p in CONFIGS if p.startswith('configs/cls/')]
DISTILLERS = ('SegDistiller', 'ClsDistiller')

# Name token -> (dataset types the config trains on, metafile name).
DATASETS = {
    'cityscapes': ({'CityscapesDataset'}, 'Cityscapes'),
    'voc12aug': ({'PascalVOCDataset'}, 'Pascal VOC 2012 + Aug'),
    'ade20k': ({'ADE20KDataset'}, 'ADE20K'),
    'synthetic-cityscapes-128x256': ({'CityscapesDataset'},
                                     'Synthetic Cityscapes (generated)'),
    'cifar100': ({'CIFAR100'}, 'CIFAR-100'),
    'in1k': ({'ImageNet'}, 'ImageNet-1k'),
    'cub': ({'CUB'}, 'CUB-200-2011'),
    'tiny-imagenet': ({'CustomDataset'}, 'Tiny-ImageNet'),
    'fashion-mnist-5k': ({'FashionMNIST'},
                         'Fashion-MNIST (5k training images)'),
}
TOKEN = r'[a-z0-9]+(?:-[a-z0-9]+)*'
NAME = re.compile(
    rf'^(?:(?P<role>student|teacher)_'
    rf'|(?P<method>{TOKEN})_(?P<teacher>{TOKEN})_)?'
    rf'(?P<model>{TOKEN})_(?P<gpus>\d+)xb(?P<batch>\d+)-(?P<length>\d+)'
    r'(?P<unit>k|it|e)_(?P<dataset>'
    + '|'.join(map(re.escape, sorted(DATASETS, key=len, reverse=True)))
    + r')(?:-(?P<crop_h>\d+)x(?P<crop_w>\d+))?\.py$')
METHOD_LOSSES = {'kd': 'KDLoss', 'dkd': 'DKDLoss', 'gdkd': 'GDKDLoss',
                 'gdkd3': 'GDKD3Loss', 'dist': 'DISTLoss', 'lskd': 'KDLoss'}
# The official segmentation settings: KD, DKD and GDKD from the authors'
# Cityscapes code (ZaberKo/seg-gdkd; its DKD is alpha 1, beta 2, T 1);
# GDKD3 takes the official GDKD3 top-k 4 (ZaberKo/GDKD) and the rest from
# the segmentation GDKD; DIST and the weight of the intra-class relation the
# official ``*-dist`` methods add from the same code (its dist.py and
# ``dist_intra_weight``). Configs write every parameter: defaults may change.
SEG_LOSS_SETTINGS = {
    'KDLoss': dict(temperature=1.0),
    'DKDLoss': dict(alpha=1.0, beta=2.0, temperature=1.0),
    'GDKDLoss': dict(k=3, temperature=1.0, w0=1.0, w1=1.0, w2=2.0),
    'GDKD3Loss': dict(k=4, temperature=1.0, w0=1.0, w1=1.0, w2=2.0),
    'DISTLoss': dict(beta=1.0, gamma=1.0, temperature=1.0,
                     per_image_intra=False),
}
RELATION_WEIGHT = 1.0  # intra_weight of kd-dist, dkd-dist and gdkd-dist
SOURCES = {'KDLoss': ['ZaberKo/seg-gdkd'], 'DKDLoss': ['ZaberKo/seg-gdkd'],
           'GDKDLoss': ['ZaberKo/seg-gdkd'],
           'GDKD3Loss': ['ZaberKo/GDKD', 'ZaberKo/seg-gdkd'],
           'DISTLoss': ['ZaberKo/seg-gdkd', 'hunto/DIST_KD']}
AUX_WEIGHT = 0.4  # the official trainer's, for ResNet students
# Logit stride of each decode head: the heads' maps differ in size when a
# SegFormer (1/4) learns from a DeepLabV3 (1/8).
HEAD_STRIDES = {'ASPPHead': 8, 'PSPHead': 8, 'SegformerHead': 4}
SIZE = 32  # tiny inputs: every model sees 32 x 32 images here
# One config per teacher/student pair trains through the Runner.
RUNNER_CONFIGS = [
    'configs/gdkd/gdkd_deeplabv3-r101_deeplabv3-r18_8xb2-40k_'
    'cityscapes-512x1024.py',
    'configs/kd/kd_deeplabv3-r101_pspnet-r18_8xb2-40k_cityscapes-512x1024.py',
    'configs/dkd/dkd_deeplabv3-r101_deeplabv3-mobilenetv2_4xb2-80k_'
    'cityscapes-512x1024.py',
    'configs/gdkd3/gdkd3_deeplabv3-r101_segformer-mit-b0_8xb1-160k_'
    'cityscapes-1024x1024.py',
    'configs/gdkd3/gdkd3_segformer-mit-b5_segformer-mit-b0_8xb1-160k_'
    'cityscapes-1024x1024.py',
]
# Folders whose metafile may hold results: the runs measured here.
DEMO_RUNS = {'teacher': 'teacher', 'student': 'student', 'kd': 'KD',
             'dkd': 'DKD', 'gdkd': 'GDKD', 'gdkd-adaptive': 'GDKD-adaptive',
             'gdkd3': 'GDKD3', 'dist': 'DIST', 'gdkd-dist': 'GDKD-DIST'}
FASHION_ROWS = {'teacher': 'teacher', 'student': 'student alone',
                'kd': 'KD', 'dkd': 'DKD', 'gdkd': 'GDKD', 'gdkd3': 'GDKD3',
                'dist': 'DIST', 'lskd': 'LSKD'}


def name_of(config):
    match = NAME.match(osp.basename(config))
    assert match, f'{config} does not follow the naming scheme ' \
        '(configs/README.md)'
    return match


@pytest.fixture(scope='module', autouse=True)
def config_files_read_once():
    """Parse each config file once in this module. mmengine re-reads all of
    mmseg's metafiles for each ``mmseg::`` base it resolves, and re-parses
    every base file for each config that inherits it (together most of a
    second per config here); none of them changes during the tests."""
    import mmengine.config.utils as config_utils
    parse_file = Config._file2dict
    parsed = {}

    def parse_once(filename, *args, **kwargs):
        key = (filename, args, tuple(sorted(kwargs.items())))
        if key not in parsed:
            parsed[key] = parse_file(filename, *args, **kwargs)
        return copy.deepcopy(parsed[key])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config_utils, 'load',
                      functools.lru_cache(maxsize=None)(config_utils.load))
        patch.setattr(Config, '_file2dict', staticmethod(parse_once))
        yield


@functools.lru_cache(maxsize=None)
def _parse(config):
    return Config.fromfile(osp.join(ROOT, config), import_custom_modules=False)


def parse(config):
    """A config, parsed once per session; a copy the caller may change."""
    if config in CLS_CONFIGS:  # parsed once for all classification tests
        from cls_helpers import load_config as load_cls_config
        return load_cls_config(config)
    return copy.deepcopy(_parse(config))


@functools.lru_cache(maxsize=None)
def _resolve(spec):
    return resolve_model_cfg(spec, 'model')


def teacher_and_student(cfg):
    """(teacher, student) model dicts of a distillation config."""
    model = cfg.model
    if model.type == 'SingleTeacherDistill':  # mmrazor
        return (_resolve(cfg.teacher_cfg_path),
                _resolve(cfg.student_cfg_path))
    teacher = model.teacher
    return (_resolve(teacher) if isinstance(teacher, str) else teacher,
            model.student)


def distill_losses(cfg):
    model = cfg.model
    if model.type == 'SingleTeacherDistill':
        return dict(model.distiller.distill_losses)
    return dict(model.get('distill_losses', {}))


def loss_type(loss):
    return loss['type'].split('.')[-1]  # mmrazor names 'mmseg.GDKDLoss'


def model_token(model):
    """The name token of an mmseg segmentor dict, e.g. 'segformer-mit-b0'."""
    head = {'ASPPHead': 'deeplabv3', 'PSPHead': 'pspnet',
            'SegformerHead': 'segformer'}[model['decode_head']['type']]
    backbone = model['backbone']
    if backbone['type'] == 'ResNetV1c':
        width = backbone.get('base_channels', 64)
        body = f"r{backbone['depth']}" + ('' if width == 64 else f'w{width}')
    elif backbone['type'] == 'MobileNetV2':
        body = 'mobilenetv2'
    else:
        body = {(32, (2, 2, 2, 2)): 'mit-b0', (64, (3, 6, 40, 3)): 'mit-b5'}[
            backbone['embed_dims'], tuple(backbone['num_layers'])]
    return f'{head}-{body}'


def dataset_types(dataset):
    if dataset['type'] == 'ConcatDataset':
        return set().union(*map(dataset_types, dataset['datasets']))
    return {dataset['type']}


def config_text(config):
    """The config's text followed by that of its local bases."""
    path = osp.join(ROOT, config)
    text = open(path).read()
    match = re.search(r"^_base_ = (\[[^\]]*\]|'[^']*')", text, re.M)
    bases = ast.literal_eval(match.group(1)) if match else []
    for base in [bases] if isinstance(bases, str) else bases:
        if '::' not in base:
            text += config_text(osp.relpath(
                osp.normpath(osp.join(osp.dirname(path), base)), ROOT))
    return text


@functools.lru_cache(maxsize=None)
def mmseg_model_zoo(folder):
    import mmseg
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', folder,
                    'metafile.yaml')
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        return {m['Config']: m for m in yaml.safe_load(f)['Models']}


def zoo_entry(spec):
    """mmseg's metafile entry for 'mmseg::folder/config.py', or None."""
    relative = spec.split('::', 1)[1]
    return mmseg_model_zoo(relative.split('/')[0]).get('configs/' + relative)


def published_miou(entry):
    results = entry['Results']
    results = results[0] if isinstance(results, list) else results
    return results['Metrics']['mIoU']


# --------------------------------------------------------------- names ----


@pytest.mark.parametrize('config', CONFIGS)
def test_name_follows_the_scheme_and_says_what_the_config_does(config):
    name = name_of(config)
    cfg = parse(config)
    assert cfg.train_dataloader.batch_size == int(name['batch'])
    length = int(name['length'])
    if name['unit'] == 'e':
        assert cfg.train_cfg.max_epochs == length
    else:
        assert cfg.train_cfg.max_iters == length * (
            1000 if name['unit'] == 'k' else 1)
    types, _ = DATASETS[name['dataset']]
    assert dataset_types(cfg.train_dataloader.dataset) == types
    losses = distill_losses(cfg)
    if name['method']:
        method = name['method'].split('-')[0]
        assert {loss_type(loss) for loss in losses.values()} == \
            {METHOD_LOSSES[method]}
        teacher, student = teacher_and_student(cfg)
    else:
        assert not losses
        teacher, student = None, cfg.model
    if name['crop_h']:  # the student's training crop, padded to
        crop = (int(name['crop_h']), int(name['crop_w']))
        assert tuple(cfg.crop_size) == crop
        assert tuple(student['data_preprocessor']['size']) == crop
    if config in SEG_CONFIGS:
        assert model_token(student) == name['model']
        if teacher is not None:
            assert model_token(teacher) == name['teacher']


# ---------------------------------------------------------- metafiles ----


def demo_results():
    """Measured demo runs (docs/figures/demo/summary.json), per name."""
    with open(osp.join(ROOT, 'docs', 'figures', 'demo',
                       'summary.json')) as f:
        runs = json.load(f)['results']
    results = {}
    for prefix, run in DEMO_RUNS.items():
        if run not in runs:
            continue
        miou = [r['mIoU'] for r in runs[run]]
        metrics = dict(mIoU=round(statistics.mean(miou), 2))
        if len(miou) > 1:
            metrics['mIoU std'] = round(statistics.stdev(miou), 2)
        metrics['aAcc'] = round(
            statistics.mean(r['aAcc'] for r in runs[run]), 2)
        results[prefix] = (len(miou), metrics)
    return results


def fashion_mnist_results():
    """Measured Fashion-MNIST runs (the table in docs/classification.md)."""
    with open(osp.join(ROOT, 'docs', 'classification.md')) as f:
        table = f.read().split('<!-- fashion-mnist-table:start -->')[1]
    rows = [[c.strip() for c in line.strip('|').split('|')]
            for line in table.split('<!--')[0].splitlines()
            if re.match(r'\| [^-]', line)][1:]
    results = {}
    for prefix, label in FASHION_ROWS.items():
        row, = [r for r in rows if r[0].startswith(label + ' ')
                or r[0].endswith(', ' + label)]
        mean, _, std = row[1].partition(' ± ')
        metrics = {'Top 1 Accuracy': float(mean)}
        if std:
            metrics['Top 1 Accuracy std'] = float(std)
        results[prefix] = (len(row[2].split(',')), metrics)
    return results


MEASURED = {'configs/demo': demo_results,
            'configs/cls/fashion_mnist': fashion_mnist_results}


def without_loss_weights(node):
    if isinstance(node, dict):
        return {k: without_loss_weights(v) for k, v in node.items()
                if k != 'loss_weight'}
    return node


def repo_path(path):
    return osp.relpath(osp.normpath(path), ROOT) if osp.isabs(path) \
        else path


@pytest.mark.parametrize('folder', sorted({osp.dirname(p) for p in CONFIGS}))
def test_folder_has_a_readme_and_a_metafile_that_matches_its_configs(folder):
    with open(osp.join(ROOT, folder, 'README.md')) as f:
        readme = f.read()
    with open(osp.join(ROOT, folder, 'metafile.yaml')) as f:
        meta = yaml.safe_load(f)
    collections = {c['Name']: c for c in meta['Collections']}
    models = meta['Models']
    assert sorted(m['Config'] for m in models) == \
        [p for p in CONFIGS if osp.dirname(p) == folder]
    measured = MEASURED[folder]() if folder in MEASURED else {}
    for model in models:
        config = model['Config']
        name = name_of(config)
        cfg = parse(config)
        metadata = model['Metadata']
        assert model['Name'] == osp.splitext(osp.basename(config))[0]
        assert metadata['Training Data'] == DATASETS[name['dataset']][1]
        assert metadata['Batch Size'] == \
            int(name['gpus']) * int(name['batch'])
        collection = collections[model['In Collection']]
        assert collection['README'] == f'{folder}/README.md'
        assert metadata['Training Data'] in \
            collection['Metadata']['Training Data']
        if cfg.model.type in DISTILLERS:
            teacher = dict(Config=repo_path(cfg.model.teacher))
            if '://' in (cfg.model.teacher_ckpt or ''):
                teacher['Weights'] = cfg.model.teacher_ckpt
            assert metadata['Teacher'] == teacher
            # the student as trained alone (KD may reweigh its task loss)
            assert without_loss_weights(parse(
                metadata['Student']['Config']).model) == \
                without_loss_weights(cfg.model.student)
        elif cfg.model.type == 'SingleTeacherDistill':
            assert metadata['Teacher'] == dict(
                Config=cfg.teacher_cfg_path, Weights=cfg.teacher_ckpt)
            assert metadata['Student'] == dict(Config=cfg.student_cfg_path)
        else:
            assert 'Teacher' not in metadata and 'Student' not in metadata
        # Published numbers are cited with their source, on the README row
        # of the config they were published for.
        for published in model.get('Published Results', []):
            assert 'README.md' in published['Source']
            miou = f"{published['Metrics']['mIoU']:.2f}"
            assert any(miou in row and osp.basename(config) in row
                       for row in readme.splitlines()), (config, miou)
        # Results are runs measured here, never published numbers.
        if 'Results' in model:
            seeds, metrics = measured[config.split('/')[-1].split('_')[0]]
            assert metadata['Seeds'] == seeds
            assert [r['Metrics'] for r in model['Results']] == [metrics]


# ------------------------------------------------------------- numbers ----


@pytest.mark.parametrize(
    'config', [p for p in SEG_CONFIGS if name_of(p)['method']])
def test_segmentation_losses_carry_the_official_settings(config):
    cfg = parse(config)
    name = name_of(config)
    text = config_text(config)
    losses = distill_losses(cfg)
    for head, loss in losses.items():
        kind = loss_type(loss)
        expected = dict(SEG_LOSS_SETTINGS[kind])
        if name['method'] == 'gdkd-adaptive':
            expected['k'] = 'adaptive'
        if name['method'] == 'lskd':
            expected['standardize'] = 'global'
        if name['method'].endswith('-dist'):
            expected['intra_weight'] = RELATION_WEIGHT
        else:
            assert not loss.get('intra_weight'), head
        assert {key: loss.get(key) for key in expected} == expected, head
        assert loss.get('use_fused', True)
        assert all(source in text for source in SOURCES[kind])
        if head in ('auxiliary_head', 'loss_gdkd_aux'):
            assert loss['loss_weight'] == AUX_WEIGHT
        else:
            assert loss.get('loss_weight', 1.0) == 1.0
    if cfg.model.type == 'SegDistiller':
        student_heads = {'decode_head'} | (
            {'auxiliary_head'} if cfg.model.student.get('auxiliary_head')
            else set())
        assert set(losses) == student_heads  # every head the student has


def protocol_of(config):
    """'8xb2-40k', '4xb2-80k', ...: GPUs x batch and schedule."""
    name = name_of(config)
    return f"{name['gpus']}xb{name['batch']}-{name['length']}{name['unit']}"


@pytest.mark.parametrize('config', [
    p for p in SEG_CONFIGS if name_of(p)['model'] == 'deeplabv3-mobilenetv2'
    and protocol_of(p) == '8xb2-40k'])
def test_the_official_protocol_gives_mobilenetv2_students_no_aux_head(config):
    """The 8xb2-40k protocol's trainers (winycg/CIRKD, ZaberKo/seg-gdkd
    train_kd.py) build MobileNetV2 students without an auxiliary head."""
    model = parse(config).model
    student = model.student if model.type == 'SegDistiller' else model
    assert student.get('auxiliary_head') is None


def test_classification_losses_name_every_parameter():
    for config in CLS_CONFIGS:
        for loss in distill_losses(parse(config)).values():
            kind = loss_type(loss)
            # A classification row is one image: no per-image intra term.
            named = set(SEG_LOSS_SETTINGS[kind]) - {'per_image_intra'}
            assert named <= set(loss), config
            assert loss.get('use_fused', True)


def test_stated_mmseg_numbers_are_mmseg_model_zoo_numbers():
    """Every 'NN.NN val mIoU' a segmentation config file states is the
    model-zoo mIoU of an mmseg config that file names; every mmseg teacher's
    checkpoint is the model zoo's, as published."""
    files = [osp.relpath(p, ROOT) for p in glob.glob(
        osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
        if '/cls/' not in p]
    stated_somewhere = 0
    for path in files:
        with open(osp.join(ROOT, path)) as f:
            text = f.read()
        stated = {float(x) for x in re.findall(r'(\d+\.\d+) val mIoU', text)}
        published = {published_miou(entry) for entry in map(
            zoo_entry, re.findall(r"'(mmseg::[^']+)'", text)) if entry}
        assert stated <= published, path
        stated_somewhere += len(stated)
    assert stated_somewhere >= 10
    for config in SEG_CONFIGS:
        model = parse(config).model
        if model.type == 'SegDistiller' and model.teacher.startswith(
                'mmseg::'):
            assert model.teacher_ckpt == zoo_entry(model.teacher)['Weights']


# -------------------------------------------------- builds and steps ----


@contextmanager
def stand_in_op_lookups():
    """Names of mmcv ops looked up on mmcv-lite's stand-in ``mmcv._ext``
    while the block runs: every call of a compiled op looks one up. Stays
    empty with full mmcv, which has no stand-in."""
    lookups = []
    stand_in = sys.modules.get('mmcv._ext')
    if stand_in is None or has_compiled_mmcv_ops():
        yield lookups
        return
    stand_in_type = type(stand_in)
    missing_op = stand_in_type.__getattr__

    def recording(module, name):
        if not name.startswith('__'):
            lookups.append(name)
        return missing_op(module, name)

    stand_in_type.__getattr__ = recording
    try:
        yield lookups
    finally:
        stand_in_type.__getattr__ = missing_op


def test_stand_in_op_lookups_are_recorded():
    if has_compiled_mmcv_ops():
        pytest.skip('full mmcv: there is no stand-in')
    from mmcv.ops import sigmoid_focal_loss
    with stand_in_op_lookups() as lookups:
        with pytest.raises(RuntimeError, match='needs compiled mmcv'):
            sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2).long())
    assert lookups == ['sigmoid_focal_loss_forward']


def pair_of(config):
    """(teacher, student, data set) a config belongs to; plain configs
    (baselines, the demo's teacher and student) are a model and a data
    set."""
    name = name_of(config)
    if name['method']:
        return name['teacher'], name['model'], name['dataset']
    return None, name['model'], name['dataset']


SEG_PAIRS = sorted({pair_of(p) for p in SEG_CONFIGS if pair_of(p)[0]})


def configs_of(pair):
    teacher, student, dataset = pair
    return [p for p in SEG_CONFIGS if pair_of(p) == pair
            or pair_of(p) in ((None, student, dataset),
                              (None, teacher, dataset))]


def runner_config_of(pair):
    found = [p for p in RUNNER_CONFIGS if pair_of(p) == pair]
    return found[0] if found else None


# Students that took a step alone: a baseline config shared by protocols or
# pairs steps once.
STEPPED_STUDENTS = set()


def without_losses(model):
    return {k: v for k, v in model.items() if k != 'distill_losses'}


def fake_batch(num_classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(2):  # ASPP's image pooling needs 2 images in train mode
        label = torch.randint(0, num_classes, (1, SIZE, SIZE), generator=g)
        label[:, :5] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(SIZE, SIZE),
                                 ori_shape=(SIZE, SIZE),
                                 pad_shape=(SIZE, SIZE)))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, SIZE, SIZE), generator=g,
                            dtype=torch.uint8) for _ in samples]
    return dict(inputs=inputs, data_samples=samples)


def train_step(model, num_classes):
    params = [p for p in model.parameters() if p.requires_grad]
    optim_wrapper = OptimWrapper(torch.optim.SGD(params, lr=1e-3))
    return model.train_step(fake_batch(num_classes), optim_wrapper)


@contextmanager
def decode_logits(distiller):
    """The student's and the teacher's decode-head logits of a step."""
    seen = {}
    hooks = [getattr(distiller, role).decode_head.register_forward_hook(
        lambda module, args, out, role=role: seen.__setitem__(
            role, out.detach())) for role in ('student', 'teacher')]
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()


def kd_reference(student, teacher, labels, temperature, standardize=None):
    """Pixel-wise KD in float64, the teacher's map resized (bilinear) to the
    student's grid, the labels (nearest) masking ignored pixels; with
    ``standardize='global'`` on each pixel's z-scored logits (LSKD)."""
    teacher = nnf.interpolate(teacher.double(), size=student.shape[2:],
                              mode='bilinear', align_corners=False)
    labels = nnf.interpolate(labels.double(), size=student.shape[2:],
                             mode='nearest')[:, 0]
    student = student.double()
    if standardize == 'global':
        student, teacher = zscore(student, dim=1), zscore(teacher, dim=1)
    log_p = torch.log_softmax(student / temperature, 1)
    log_q = torch.log_softmax(teacher / temperature, 1)
    kl = (log_q.exp() * (log_q - log_p)).sum(1) * temperature**2
    return kl[labels != 255].mean().item()


def check_distill_step(distiller, model_cfg, config, num_classes):
    """One training step of a distillation config on the pair's distiller
    (only ``distill_losses`` differs between a pair's configs)."""
    for head in model_cfg.distill_losses:  # configs distil what exists
        assert getattr(distiller.student, f'with_{head}'), config
        assert getattr(distiller.teacher, f'with_{head}'), config
    distiller.distill_losses = distiller.build_losses(
        model_cfg.distill_losses)
    with decode_logits(distiller) as logits:
        log_vars = train_step(distiller, num_classes)
    for head, loss in distiller.distill_losses.items():
        prefix = 'decode' if head == 'decode_head' else 'aux'
        assert torch.isfinite(log_vars[f'{prefix}.{loss.loss_name}']), config
    student, teacher = logits['student'], logits['teacher']
    for role, grid in (('student', student), ('teacher', teacher)):
        stride = HEAD_STRIDES[type(getattr(distiller, role).decode_head)
                              .__name__]
        assert grid.shape == (2, num_classes, SIZE // stride, SIZE // stride)
    kd = distiller.distill_losses['decode_head']
    if type(kd).__name__ == 'KDLoss' and not kd.intra_weight:  # plain KD
        labels = torch.stack(
            [s.gt_sem_seg.data for s in fake_batch(num_classes)
             ['data_samples']]).double()
        assert float(log_vars['decode.loss_kd']) == pytest.approx(
            kd_reference(student, teacher, labels, kd.temperature,
                         kd.standardize), rel=1e-4)


#: What lets a distiller build without downloads, for SIZE inputs.
TINY_MODEL = {
    'model.teacher_ckpt': None,
    'model.student.pretrained': None,
    'model.student.backbone.init_cfg': None,
    'model.student.data_preprocessor.size': (SIZE, SIZE),
}


def tiny_build_options(model):
    """A copy of the distiller dict with :data:`TINY_MODEL` applied."""
    cfg = Config(dict(model=copy.deepcopy(model)))
    cfg.merge_from_dict(TINY_MODEL)
    return cfg.model


def tiny_run_options(data_root):
    """--cfg-options for one Runner iteration on the generated data."""
    return {
        **TINY_MODEL,
        'data_preprocessor.size': (SIZE, SIZE),
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.dataset.pipeline': [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='RandomCrop', crop_size=(SIZE, SIZE)),
            dict(type='PackSegInputs')],
        'train_cfg.max_iters': 1,
        'val_cfg': None, 'val_dataloader': None, 'val_evaluator': None,
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.checkpoint.save_best': None,
        'randomness.seed': 0,
    }


@pytest.fixture(scope='module')
def cityscapes_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_cityscapes'))
    generate_synthetic_cityscapes(root, num_train=2, num_val=1, seed=0)
    return root


def run_one_iteration(config, data_root, work_dir):
    """tools/train.py CONFIG --work-dir W --cfg-options ..., in process;
    returns the trained distiller."""
    from mmengine.runner import Runner
    args = argparse.Namespace(cfg_options=tiny_run_options(data_root),
                              launcher='none', work_dir=str(work_dir),
                              local_rank=0)
    with pytest.MonkeyPatch.context() as patch:
        # mmengine formats the whole config with yapf five times per Runner
        # (3 s each for a distiller's config here); nothing here reads it.
        patch.setattr(Config, 'pretty_text', property(lambda cfg: cfg.text))
        runner = Runner.from_cfg(load_config(osp.join(ROOT, config), args))
        runner.train()
    scalars = runner.message_hub.log_scalars
    losses = runner.model.distill_losses
    logged = [f"train/{'decode' if head == 'decode_head' else 'aux'}."
              f'{losses[head].loss_name}' for head in losses]
    assert all(
        torch.isfinite(torch.tensor(scalars[k].current())) for k in logged)
    checkpoint = torch.load(osp.join(work_dir, 'iter_1.pth'),
                            map_location='cpu', weights_only=False)
    state = checkpoint['state_dict']
    assert state and all(k.startswith('student.') for k in state)
    return runner.model


#: DIST and the official relation-augmented methods: one config of each
#: trains through the Runner, together every pair and both protocols (with
#: and without the MobileNetV2 auxiliary head); the pair tests step them all.
RELATION_METHODS = ('dist', 'kd-dist', 'dkd-dist', 'gdkd-dist')
RELATION_RUNNER_CONFIGS = [
    f'configs/{method}/{method}_deeplabv3-r101_{run}_cityscapes-512x1024.py'
    for method, run in zip(RELATION_METHODS, [
        'deeplabv3-r18_8xb2-40k', 'pspnet-r18_4xb2-80k',
        'deeplabv3-mobilenetv2_4xb2-80k', 'deeplabv3-mobilenetv2_8xb2-40k'])]


def test_every_relation_method_trains_through_the_runner():
    assert set(RELATION_RUNNER_CONFIGS) <= set(SEG_CONFIGS)
    assert {name_of(p)['method'] for p in SEG_CONFIGS
            if (name_of(p)['method'] or '').endswith('dist')} == \
        set(RELATION_METHODS)


@pytest.mark.slow
@pytest.mark.parametrize('config', RELATION_RUNNER_CONFIGS)
def test_relation_config_trains_one_runner_iteration(config, cityscapes_root,
                                                     tmp_path):
    with stand_in_op_lookups() as lookups:
        run_one_iteration(config, cityscapes_root, tmp_path)
    assert lookups == []


def test_every_pair_trains_through_the_runner():
    pairs = {(t, s) for t, s, d in SEG_PAIRS if d == 'cityscapes'}
    assert {(t, s) for t, s, d in map(pair_of, RUNNER_CONFIGS)} == pairs
    assert {(t, s) for t, s, d in SEG_PAIRS
            if d != 'synthetic-cityscapes-128x256'} == pairs


@pytest.mark.parametrize('pair', [
    pytest.param(pair, marks=[pytest.mark.slow] if runner_config_of(pair)
                 else []) for pair in SEG_PAIRS], ids='-'.join)
def test_pair_builds_and_every_config_takes_a_training_step(
        pair, cityscapes_root, tmp_path):
    configs = configs_of(pair)
    runner_config = runner_config_of(pair)
    reference = runner_config or next(
        p for p in configs if parse(p).model.type == 'SegDistiller')
    model = parse(reference).model
    teacher, student = teacher_and_student(parse(reference))
    num_classes = student.decode_head.num_classes
    # One distiller per model: protocols may differ in the student (the
    # 8xb2-40k MobileNetV2 has no auxiliary head).
    models = {json.dumps(without_losses(cfg.model)): cfg.model
              for cfg in map(parse, configs)
              if cfg.model.type == 'SegDistiller'}
    distillers = {}
    torch.manual_seed(0)
    with stand_in_op_lookups() as lookups:
        if runner_config:  # the Runner builds it, from the config file
            distillers[json.dumps(without_losses(model))] = \
                run_one_iteration(runner_config, cityscapes_root, tmp_path)

        def distiller_of(model):
            key = json.dumps(without_losses(model))
            if key not in distillers:
                distillers[key] = revert_sync_batchnorm(
                    MODELS.build(tiny_build_options(models[key])))
            return distillers[key]

        stepped = {json.dumps(model)} if runner_config else set()
        for config in configs:
            cfg = parse(config)
            if cfg.model.type == 'SegDistiller':
                assert without_losses(dict(cfg.model, student=None)) == \
                    without_losses(dict(model, student=None))
                if json.dumps(cfg.model) not in stepped:  # protocols share
                    check_distill_step(distiller_of(cfg.model), cfg.model,
                                       config, num_classes)
                    stepped.add(json.dumps(cfg.model))
            elif cfg.model.type == 'SingleTeacherDistill':  # mmrazor's run
                assert teacher_and_student(cfg) == (teacher, student)
            elif any(cfg.model == m.student for m in models.values()):
                if json.dumps(cfg.model) not in STEPPED_STUDENTS:  # alone
                    distiller = distiller_of(next(
                        m for m in models.values() if m.student == cfg.model))
                    log_vars = train_step(distiller.student, num_classes)
                    assert torch.isfinite(log_vars['loss'])
                    STEPPED_STUDENTS.add(json.dumps(cfg.model))
            else:  # a teacher's own config: the frozen teacher predicts
                assert cfg.model == teacher, config
                distiller = distiller_of(model)
                data = distiller.data_preprocessor(fake_batch(num_classes))
                with torch.no_grad():
                    losses = distiller.teacher.loss(**data)
                assert all(torch.isfinite(v) for v in losses.values())
    assert lookups == []


def test_classification_models_build_without_compiled_ops():
    pytest.importorskip('mmpretrain')
    import gdkd_seg.cls  # noqa: F401  (registers the CIFAR backbones)
    from mmpretrain.registry import MODELS as CLS_MODELS
    models = {}
    for config in CLS_CONFIGS:
        cfg = parse(config)
        found = teacher_and_student(cfg) if cfg.model.type in DISTILLERS \
            else [cfg.model]
        for model in found:
            models[json.dumps(model, sort_keys=True)] = model
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            stand_in_op_lookups() as lookups:
        for model in models.values():
            CLS_MODELS.build(model)
    assert lookups == [] and len(models) >= 10


def test_a_config_naming_a_head_the_model_lacks_fails_at_build_time():
    config = ('configs/gdkd/gdkd_deeplabv3-r101_segformer-mit-b0_8xb1-160k_'
              'cityscapes-1024x1024.py')
    model = tiny_build_options(parse(config).model)
    segformer = copy.deepcopy(model.student)
    loss = model.distill_losses.decode_head
    model.teacher = segformer
    model.distill_losses.auxiliary_head = loss
    with pytest.raises(ValueError, match="names 'auxiliary_head' but the "
                       'student has no auxiliary_head'):
        MODELS.build(model)
    cnn = parse('configs/demo/student_deeplabv3-r18w16_1xb8-300it_'
                'synthetic-cityscapes-128x256.py').model
    model.student = dict(cnn, pretrained=None)
    with pytest.raises(ValueError, match="names 'auxiliary_head' but the "
                       'teacher has no auxiliary_head'):
        MODELS.build(model)
