"""Checkpoints never run pickled code, whatever scheme or tool loads them.

A code-carrying checkpoint here pickles a call that would create a marker
directory; each test asserts that the call was refused and never ran, on
the first load and on later loads of a cached copy. Files are served over
real HTTP and HTTPS servers on 127.0.0.1; torch hub's and mmengine's caches
point into the test's temporary directory.
"""
import functools
import http.server
import json
import os
import os.path as osp
import pickle
import shutil
import ssl
import struct
import subprocess
import sys
import threading
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import BaseModel
from mmengine.runner import checkpoint, load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from gdkd_seg.apis import load_student_state
from gdkd_seg.compat import (CorruptCheckpointError, UnsafeCheckpointError,
                             safe_torch_load)
from gdkd_seg.compat.torch_load import mmengine_checkpoint_globals
from gdkd_seg.distillers import load_teacher_checkpoint
from test_checkpoint_files import toy_runner
from toy_run import Toy


class _Payload:
    """Pickles to a call that creates ``path`` if it is ever executed."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


class Net(BaseModel):
    """The model the benign checkpoints hold weights for."""

    def __init__(self, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.backbone = nn.Linear(3, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.backbone(inputs)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass


def _serve(directory, tls_context=None):
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0),
        functools.partial(_QuietHandler, directory=str(directory)))
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(
            server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def _self_signed_certificate(directory):
    cert, key = str(directory / 'cert.pem'), str(directory / 'key.pem')
    subprocess.run([
        'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
        'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj',
        '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout',
        key, '-out', cert
    ], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def _model_zoo_checkpoint():
    """A checkpoint as mmseg/mmpretrain publish them, training state kept."""
    hub = MessageHub.get_instance('test_checkpoint_safety')
    for value in (0.5, 0.25):
        hub.update_scalar('train/loss', value)
    net = Net()
    return {
        'meta': {
            'epoch': 3, 'iter': np.int64(12), 'seed': np.int32(0),
            'lr': np.float64(0.01), 'hist': np.arange(4),
            'mmseg_version': '1.2.2',
            'dataset_meta': {'classes': ('road', 'sidewalk')}
        },
        'state_dict': OrderedDict(net.state_dict()),
        'message_hub': hub.state_dict(),
    }


@pytest.fixture(scope='module')
def zoo(tmp_path_factory):
    """Benign and code-carrying checkpoints, in torch's zip format and in
    the legacy format of older model-zoo files, served over HTTP(S)."""
    root = tmp_path_factory.mktemp('zoo')
    files = root / 'files'
    files.mkdir()
    marker = root / 'code_ran'
    benign = _model_zoo_checkpoint()
    evil = {'state_dict': benign['state_dict'], 'meta': _Payload(str(marker))}
    for name, obj in (('benign', benign), ('evil', evil)):
        torch.save(obj, files / f'{name}.pth')
        torch.save(obj, files / f'{name}_legacy.pth',
                   _use_new_zipfile_serialization=False)
    http_server = _serve(files)
    servers = [http_server]
    cert = https = None
    if shutil.which('openssl'):
        cert, context = _self_signed_certificate(root)
        servers.append(_serve(files, context))
        https = f'https://127.0.0.1:{servers[1].server_address[1]}'
    yield types.SimpleNamespace(
        files=files, marker=marker, expected=benign,
        http=f'http://127.0.0.1:{http_server.server_address[1]}',
        https=https, cert=cert)
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """torch hub's and mmengine's caches in the test's own directory."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine'))
    return tmp_path


# How a checkpoint named NAME is reached through each scheme mmengine's
# CheckpointLoader knows; every scheme it lists must have one.


def _local(prefix, name, zoo, monkeypatch, caches):
    return str(zoo.files / name)


def _http(prefix, name, zoo, monkeypatch, caches):
    return f'{zoo.http}/{name}'


def _https(prefix, name, zoo, monkeypatch, caches):
    if zoo.https is None:
        pytest.skip('openssl is needed for a local HTTPS server')
    monkeypatch.setenv('SSL_CERT_FILE', zoo.cert)
    return f'{zoo.https}/{name}'


def _pavi(prefix, name, zoo, monkeypatch, caches):
    """A stand-in for pavi's model cloud that downloads from the zoo."""

    def get(path):
        source = zoo.files / osp.basename(path)
        return types.SimpleNamespace(
            name=source.name,
            download=lambda dest: shutil.copy(source, dest))

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=get)
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    return f'pavi://models/{name}'


def _petrel(prefix, name, zoo, monkeypatch, caches):
    """A stand-in for petrel's client behind mmengine's PetrelBackend."""

    class Client:

        def __init__(self, conf_path=None, enable_mc=True):
            pass

        def Get(self, path):
            return (zoo.files / osp.basename(path)).read_bytes()

    client = types.ModuleType('petrel_client.client')
    client.Client = Client
    package = types.ModuleType('petrel_client')
    package.client = client
    monkeypatch.setitem(sys.modules, 'petrel_client', package)
    monkeypatch.setitem(sys.modules, 'petrel_client.client', client)
    scheme = 's3://' if 's3' in prefix else 'petrel://'
    return f'{scheme}bucket/{name}'


def _model_table(table_getter):

    def locate(prefix, name, zoo, monkeypatch, caches):
        monkeypatch.setattr(checkpoint, table_getter,
                            lambda: {name: f'{zoo.http}/{name}'})
        return f'{prefix}{name}'

    return locate


def _open_mmlab(prefix, name, zoo, monkeypatch, caches):
    """Through the user's own MMENGINE_HOME/open_mmlab.json: one name maps
    to a URL, one to a file in MMENGINE_HOME."""
    home = caches / 'mmengine'
    home.mkdir(exist_ok=True)
    shutil.copy(zoo.files / name, home / f'local_{name}')
    (home / 'open_mmlab.json').write_text(
        json.dumps({
            'by_url': f'{zoo.http}/{name}',
            'by_file': f'local_{name}'
        }))
    return [f'{prefix}by_url', f'{prefix}by_file']


SCHEMES = {
    '': _local,
    'http://': _http,
    'https://': _https,
    'pavi://': _pavi,
    r'(\S+\:)?s3://': _petrel,
    r'(\S+\:)?petrel://': _petrel,
    'modelzoo://': _model_table('get_torchvision_models'),
    'torchvision://': _model_table('get_torchvision_models'),
    'open-mmlab://': _open_mmlab,
    'openmmlab://': _open_mmlab,
    'mmcls://': _model_table('get_mmcls_models'),
}


def test_every_scheme_mmengine_knows_has_a_scenario():
    assert set(CheckpointLoader._schemes) == set(SCHEMES)


def _paths(prefix, name, zoo, monkeypatch, caches):
    paths = SCHEMES[prefix](prefix, name, zoo, monkeypatch, caches)
    return paths if isinstance(paths, list) else [paths]


def _weights(loaded):
    return list(loaded['state_dict'].values())


@pytest.mark.parametrize('prefix', sorted(CheckpointLoader._schemes))
@pytest.mark.parametrize('fmt', ['', '_legacy'])
def test_every_scheme_refuses_code_and_loads_model_zoo_files(
        prefix, fmt, zoo, monkeypatch, caches):
    for path in _paths(prefix, f'evil{fmt}.pth', zoo, monkeypatch, caches):
        for _ in range(2):  # the second load reads any cached copy
            with pytest.raises(UnsafeCheckpointError, match='os.makedirs'):
                _load_checkpoint(path, map_location='cpu')
            assert not zoo.marker.exists()
    for path in _paths(prefix, f'benign{fmt}.pth', zoo, monkeypatch, caches):
        loaded = _load_checkpoint(path, map_location='cpu')
        for got, want in zip(_weights(loaded), _weights(zoo.expected)):
            torch.testing.assert_close(got, want)
        if prefix != 'mmcls://':  # mmengine keeps only mmcls weights
            assert loaded['meta']['lr'] == np.float64(0.01)
            history = loaded['message_hub']['log_scalars']['train/loss']
            assert isinstance(history, HistoryBuffer)
            assert history.mean() == pytest.approx(0.375)


def test_a_poisoned_download_cache_is_not_trusted(zoo, caches):
    url = f'{zoo.http}/benign.pth'
    _load_checkpoint(url)
    cached = caches / 'torch' / 'hub' / 'checkpoints' / 'benign.pth'
    shutil.copy(zoo.files / 'evil.pth', cached)
    with pytest.raises(UnsafeCheckpointError, match='cached as'):
        _load_checkpoint(url)
    assert not zoo.marker.exists()


def _teacher_ckpt(url, work_dir):
    net = Net()
    load_teacher_checkpoint(net, url)
    return net.backbone.weight


def _test_or_export(url, work_dir):  # tools/test.py, tools/export_student.py
    state, _ = load_student_state(url)
    return state['backbone.weight']


def _load_from(url, work_dir):
    net = Net()
    load_checkpoint(net, url, map_location='cpu')
    return net.backbone.weight


def _pretrained_init_cfg(url, work_dir):
    net = Net(init_cfg=dict(type='Pretrained', checkpoint=url))
    net.init_weights()
    return net.backbone.weight


def _resume(url, work_dir):  # --resume with cfg.load_from=URL
    toy_runner(work_dir).resume(url)


LOADING_ENTRY_POINTS = [
    _teacher_ckpt, _test_or_export, _load_from, _pretrained_init_cfg
]


@pytest.mark.parametrize('entry', [*LOADING_ENTRY_POINTS, _resume])
def test_entry_points_refuse_code_from_a_url(entry, zoo, caches):
    for _ in range(2):  # the second load reads the cached copy
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            entry(f'{zoo.http}/evil.pth', caches)
        assert not zoo.marker.exists()


@pytest.mark.parametrize('entry', LOADING_ENTRY_POINTS)
def test_entry_points_load_model_zoo_files_from_a_url(entry, zoo, caches):
    weight = entry(f'{zoo.http}/benign.pth', caches)
    torch.testing.assert_close(
        weight, zoo.expected['state_dict']['backbone.weight'])


def test_teacher_load_strips_ddp_prefix_and_names_missing_weights(tmp_path):
    want = Net().state_dict()
    wrapped = tmp_path / 'ddp.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in want.items()}},
               wrapped)
    net = Net()
    load_teacher_checkpoint(net, str(wrapped))
    torch.testing.assert_close(net.state_dict()['backbone.bias'],
                               want['backbone.bias'])
    partial = tmp_path / 'partial.pth'
    torch.save({'backbone.weight': want['backbone.weight'], 'extra': 1.0},
               partial)
    with pytest.raises(RuntimeError, match=r"1 weights are missing, e\.g\. "
                       r"\['backbone.bias'\]"):
        load_teacher_checkpoint(Net(), str(partial))
    wide = tmp_path / 'wide.pth'
    torch.save({'backbone.weight': torch.zeros(2, 4),
                'backbone.bias': torch.zeros(2)}, wide)
    with pytest.raises(RuntimeError, match='(?s)does not fit.*size mismatch'):
        load_teacher_checkpoint(Net(), str(wide))


def test_allow_list_is_scoped_to_the_toolkits_loads(zoo):
    ours = mmengine_checkpoint_globals()

    def leaked():
        return [g for g in ours if g in torch.serialization.get_safe_globals()]

    assert leaked() == []  # after import gdkd_seg
    safe_torch_load(zoo.files / 'benign.pth')
    assert leaked() == []
    with pytest.raises(pickle.UnpicklingError):  # the user's own loads
        torch.load(zoo.files / 'benign.pth', weights_only=True)
    with torch.serialization.safe_globals([HistoryBuffer]):
        safe_torch_load(zoo.files / 'benign.pth')
        assert HistoryBuffer in torch.serialization.get_safe_globals()


def _random(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _truncated(path, legacy=False):
    torch.save({'w': torch.randn(100)}, path,
               _use_new_zipfile_serialization=not legacy)
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize('damage', [
    _random, _truncated,
    functools.partial(_truncated, legacy=True),
    lambda path: path.write_bytes(b''),
    lambda path: path.write_bytes(b'not a checkpoint\n'),
    # BINBYTES8 claiming 2**62 bytes: reading it must not raise MemoryError
    lambda path: path.write_bytes(b'\x8e' + struct.pack('<Q', 1 << 62)
                                  + b'abc'),
], ids=['random', 'truncated', 'truncated-legacy', 'empty', 'text',
        'huge-length'])
def test_corrupt_files_are_corrupt_not_unsafe(damage, tmp_path):
    path = tmp_path / 'damaged.pth'
    damage(path)
    with pytest.raises(CorruptCheckpointError,
                       match="'.*damaged.pth' is corrupt") as info:
        _load_checkpoint(str(path))
    assert 'weights_only' not in str(info.value)
    assert 'could run code' not in str(info.value)


def test_resume_never_executes_a_config_string_stored_in_the_checkpoint(
        tmp_path):
    """mmengine's Runner.resume runs ``meta['config']`` as a Python config;
    a checkpoint that passes the weights-only load must not run code
    there either."""
    marker = tmp_path / 'config_was_executed'
    ckpt = tmp_path / 'iter_3.pth'
    torch.save({
        'meta': {'epoch': 0, 'iter': 3,
                 'config': f'x = __import__("os").makedirs({str(marker)!r})'},
        'state_dict': Toy().state_dict(),
        'message_hub': MessageHub.get_instance('stored').state_dict()
    }, ckpt)
    runner = toy_runner(tmp_path)
    runner.resume(str(ckpt))
    assert not marker.exists()
    assert runner.iter == 3
