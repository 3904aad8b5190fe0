"""Shared by the classification tests (mmpretrain scope, model building)."""
import copy
import functools

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

pytest.importorskip('mmpretrain', reason='classification needs mmpretrain')

import gdkd_seg.cls  # noqa: E402,F401  (registers in mmpretrain)


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """Build in mmpretrain's scope on one thread; restore the session's
    scope (mmseg) and threads after, including any scope a Runner set.

    On a shared 2-core machine two torch threads wait on each other: a
    ResNet-56 step on two images took 10 s instead of 0.1 s.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def _parse(path):
    return Config.fromfile(path)


def load_config(path):
    """A config file, parsed once per session (mmpretrain:: bases make
    parsing slow); returns a copy the caller may change."""
    return copy.deepcopy(_parse(path))


@functools.lru_cache(maxsize=None)
def _teacher(spec):
    from gdkd_seg.distillers import resolve_model_cfg
    return resolve_model_cfg(spec, 'teacher')


def model_cfg(config, **overrides):
    """The ``model`` of a config file as the Runner would build it: the
    top-level data_preprocessor merged in, no teacher checkpoint, a teacher
    config path resolved once per session (a pair's configs share it)."""
    cfg = load_config(config) if isinstance(config, str) else config
    model = cfg.model
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    if model.type == 'ClsDistiller':
        model.teacher_ckpt = None
        if isinstance(model.teacher, str):
            model.teacher = copy.deepcopy(_teacher(model.teacher))
    model.update(overrides)
    return model


def build(config, **overrides):
    from mmpretrain.registry import MODELS
    return MODELS.build(model_cfg(config, **overrides))
