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
import resource
import runpy
import shutil
import ssl
import struct
import subprocess
import sys
import threading
import time
import types
import zipfile
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
from gdkd_seg.compat import (CheckpointDownloadError, CorruptCheckpointError,
                             UnsafeCheckpointError, safe_torch_load)
from gdkd_seg.compat.torch_load import (mmengine_checkpoint_globals,
                                       url_cache_dir)
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


def save_crafted(obj, path, *, legacy=True, numpy1=False, numel=None):
    """``torch.save`` with a pickler that can write what other software
    wrote: ``numpy1`` names numpy's functions ``numpy.core.*`` as numpy 1.x
    did (whichever numpy runs), ``numel`` declares that size for every
    storage (whatever its data)."""

    class Pickler(pickle._Pickler):

        def save_global(self, obj, name=None):
            module = getattr(obj, '__module__', None) or ''
            if numpy1 and module.startswith('numpy._core'):
                legacy_module = 'numpy.core' + module[len('numpy._core'):]
                self.write(pickle.GLOBAL + f'{legacy_module}\n'
                           f'{name or obj.__qualname__}\n'.encode())
                self.memoize(obj)
                return
            super().save_global(obj, name)

        def save_pers(self, pid):
            if numel is not None:
                pid = (*pid[:4], numel, *pid[5:])
            super().save_pers(pid)

    module = types.SimpleNamespace(__name__='crafted', Pickler=Pickler,
                                   dump=pickle.dump)
    torch.save(obj, path, pickle_module=module,
               _use_new_zipfile_serialization=not legacy)


def mmseg0x_checkpoint():
    """The layout of an mmseg 0.x model-zoo checkpoint, as mmcv's
    save_checkpoint wrote it: numpy scalars from its hooks and config and
    environment strings in ``meta``."""
    return {
        'meta': {
            'mmcv_version': '1.7.1', 'mmseg_version': '0.30.0',
            'time': 'Tue Mar  7 10:21:01 2023',
            'env_info': 'sys.platform: linux\nPython: 3.8.16\n'
                        'PyTorch: 1.11.0\nMMSegmentation: 0.30.0+',
            'config': "norm_cfg = dict(type='SyncBN', requires_grad=True)\n"
                      "model = dict(type='EncoderDecoder')\n",
            'seed': np.int64(1024), 'exp_name': 'pspnet_r18.py',
            'CLASSES': ('road', 'sidewalk'),
            'PALETTE': [[128, 64, 128], [244, 35, 232]],
            'epoch': 1, 'iter': 80000,
            'hook_msgs': {'best_score': np.float64(0.7479),
                          'confusion': np.eye(2, dtype=np.int64)},
        },
        'state_dict': OrderedDict(Net().state_dict()),
    }


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
    """Benign and code-carrying checkpoints, in torch's zip format, in the
    legacy format of older model-zoo files, and as an mmseg 0.x model-zoo
    file written under numpy 1.x, served over HTTP(S)."""
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
    mmseg0x = mmseg0x_checkpoint()
    mmseg0x['state_dict'] = benign['state_dict']
    for name, obj in (('benign', mmseg0x), ('evil', dict(evil, np=np.eye(2)))):
        save_crafted(obj, files / f'{name}_mmseg0x.pth', numpy1=True)
    http_server = _serve(files)
    servers = [http_server]
    cert = https = None
    if shutil.which('openssl'):
        cert, context = _self_signed_certificate(root)
        servers.append(_serve(files, context))
        https = f'https://127.0.0.1:{servers[1].server_address[1]}'
    yield types.SimpleNamespace(
        files=files, marker=marker, expected=benign, mmseg0x=mmseg0x,
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


def test_the_mmseg0x_fixture_is_what_numpy_1_wrote(zoo):
    data = (zoo.files / 'benign_mmseg0x.pth').read_bytes()
    assert not zipfile.is_zipfile(zoo.files / 'benign_mmseg0x.pth')
    for name in (b'numpy.core.multiarray\nscalar',
                 b'numpy.core.multiarray\n_reconstruct', b'numpy\ndtype'):
        assert name in data
    assert b'numpy._core' not in data


def _assert_meta_loaded(meta, fmt, zoo):
    if fmt == '_mmseg0x':
        np.testing.assert_equal(meta, zoo.mmseg0x['meta'])
        assert type(meta['hook_msgs']['best_score']) is np.float64
        return
    assert meta['lr'] == np.float64(0.01)


@pytest.mark.parametrize('prefix', sorted(CheckpointLoader._schemes))
@pytest.mark.parametrize('fmt', ['', '_legacy', '_mmseg0x'])
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
        if prefix == 'mmcls://':  # mmengine keeps only mmcls weights
            continue
        _assert_meta_loaded(loaded['meta'], fmt, zoo)
        if fmt != '_mmseg0x':
            history = loaded['message_hub']['log_scalars']['train/loss']
            assert isinstance(history, HistoryBuffer)
            assert history.mean() == pytest.approx(0.375)


def test_a_poisoned_download_cache_is_not_trusted(zoo, caches):
    url = f'{zoo.http}/benign.pth'
    _load_checkpoint(url)
    cached = osp.join(url_cache_dir(url), 'benign.pth')
    shutil.copy(zoo.files / 'evil.pth', cached)
    with pytest.raises(UnsafeCheckpointError, match='cached as'):
        _load_checkpoint(url)
    assert not zoo.marker.exists()


def _teacher_ckpt(url, work_dir):
    net = Net()
    load_teacher_checkpoint(net, url)
    return net.backbone.weight


# tools/test.py, tools/model_converters/export_student.py
def _test_or_export(url, work_dir):
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


def _runner_load_from(url, work_dir):  # cfg.load_from=URL, no resume
    loaded = toy_runner(work_dir).load_checkpoint(url, map_location='cpu')
    return loaded['state_dict']['backbone.weight']


def _resume(url, work_dir):  # --resume with cfg.load_from=URL
    toy_runner(work_dir).resume(url)


LOADING_ENTRY_POINTS = [
    _teacher_ckpt, _test_or_export, _load_from, _pretrained_init_cfg,
    _runner_load_from
]


@pytest.mark.parametrize('entry', [*LOADING_ENTRY_POINTS, _resume])
def test_entry_points_refuse_code_from_a_url(entry, zoo, caches):
    for _ in range(2):  # the second load reads the cached copy
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            entry(f'{zoo.http}/evil.pth', caches)
        assert not zoo.marker.exists()


@pytest.mark.parametrize('entry', LOADING_ENTRY_POINTS)
@pytest.mark.parametrize('name', ['benign.pth', 'benign_mmseg0x.pth'])
def test_entry_points_load_model_zoo_files_from_a_url(entry, name, zoo,
                                                      caches):
    weight = entry(f'{zoo.http}/{name}', caches)
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


def _stored_run(config=None):
    """What Runner.save_checkpoint stores for the toy run at iteration 3."""
    hub = MessageHub.get_instance(f'stored_{config is None}')
    for value in (0.5, 0.25):
        hub.update_scalar('train/loss', value)
    meta = {'epoch': 0, 'iter': 3, 'seed': 7}
    if config is not None:
        meta['config'] = config
    return {'meta': meta, 'state_dict': Toy().state_dict(),
            'message_hub': hub.state_dict()}


def test_runner_resumes_from_a_checkpoint_written_under_numpy_1(tmp_path):
    ckpt = tmp_path / 'iter_3.pth'
    save_crafted(_stored_run(), ckpt, legacy=False, numpy1=True)
    # The message hub's HistoryBuffers hold numpy arrays.
    assert b'numpy.core.multiarray\n_reconstruct' in zipfile.ZipFile(
        ckpt).read('iter_3/data.pkl')
    runner = toy_runner(tmp_path)
    runner.resume(str(ckpt))
    assert runner.iter == 3
    history = runner.message_hub.get_scalar('train/loss')
    assert history.mean() == pytest.approx(0.375)


def test_loading_leaves_history_buffer_statistics_alone(tmp_path):
    """HistoryBuffer.__setstate__ copies a checkpoint's statistics methods
    into the class: every buffer of the process would follow them."""
    path = tmp_path / 'forged.pth'
    buffer = HistoryBuffer([1.0, 3.0], [1, 1])
    with pytest.MonkeyPatch.context() as patch:  # what the file will say
        patch.setitem(HistoryBuffer._statistics_methods, 'mean',
                      HistoryBuffer.max)
        patch.setitem(HistoryBuffer._statistics_methods, 'forged',
                      HistoryBuffer.min)
        torch.save({'message_hub': {'log_scalars': {'loss': buffer}}}, path)
    before = dict(HistoryBuffer._statistics_methods)
    assert before['mean'] is HistoryBuffer.mean and 'forged' not in before
    loaded = _load_checkpoint(str(path))
    assert HistoryBuffer._statistics_methods == before
    buffer = loaded['message_hub']['log_scalars']['loss']
    assert type(buffer) is HistoryBuffer
    assert buffer.statistics('mean') == pytest.approx(2.0)


def test_a_buffer_keeps_its_data_and_nothing_else(tmp_path):
    """Statistics methods forged into one buffer's own state (under the
    attribute name the class reads them from) are dropped too."""
    path = tmp_path / 'forged.pth'
    buffer = HistoryBuffer([1.0, 2.0, 100.0], [1, 1, 1], max_length=7)
    buffer.__dict__['_statistics_methods'] = {
        'mean': HistoryBuffer.max, 'current': HistoryBuffer.max}
    torch.save({'message_hub': {'log_scalars': {'loss': buffer}}}, path)
    buffer = _load_checkpoint(str(path))['message_hub']['log_scalars'][
        'loss']
    assert '_statistics_methods' not in vars(buffer)
    assert buffer.statistics('mean') == pytest.approx(103 / 3)
    assert buffer.statistics('current') == 100.0
    assert buffer.max_length == 7
    assert buffer.data[0].tolist() == [1.0, 2.0, 100.0]


def _zip_bomb(path):
    """A zip checkpoint whose one tensor, 2**24 floats (64 MiB), is stored
    deflated: a file of about 64 KiB."""
    save_crafted({'w': torch.zeros(4)}, path, legacy=False, numel=2**24)
    with zipfile.ZipFile(path) as archive:
        entries = [(i, archive.read(i)) for i in archive.infolist()]
    with zipfile.ZipFile(path, 'w') as archive:
        for info, data in entries:
            if not info.filename.endswith('/data/0'):
                archive.writestr(info, data)
                continue
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, 'w', force_zip64=True) as out:
                for _ in range(64):
                    out.write(bytes(1 << 20))


def _declared_twice(path, legacy):
    """Two tensors of one 4-float storage whose key is declared first as
    2**33 floats (what torch allocates), then as its real 4."""
    sizes = iter([2**33])

    class Pickler(pickle._Pickler):

        def save_pers(self, pid):
            super().save_pers((*pid[:4], next(sizes, pid[4]), *pid[5:]))

    shared = torch.zeros(4)
    module = types.SimpleNamespace(__name__='crafted', Pickler=Pickler,
                                   dump=pickle.dump)
    torch.save({'a': shared, 'b': shared[2:]}, path, pickle_module=module,
               _use_new_zipfile_serialization=not legacy)


@pytest.mark.parametrize('make', [
    _zip_bomb,
    functools.partial(_declared_twice, legacy=True),
    functools.partial(_declared_twice, legacy=False),
    # 2**33 floats (32 GiB) declared by a storage of 4
    functools.partial(save_crafted, {'w': torch.zeros(4)}, numel=2**33),
    functools.partial(save_crafted, {'w': torch.zeros(4)}, legacy=False,
                      numel=2**33),
], ids=['zip-bomb', 'legacy-key-twice', 'zip-key-twice', 'legacy-numel',
        'zip-numel'])
def test_declared_sizes_far_beyond_the_file_are_refused_unallocated(
        make, tmp_path):
    path = tmp_path / 'huge.pth'
    make(path)
    assert path.stat().st_size < 100_000
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    start = time.perf_counter()
    with pytest.raises(CorruptCheckpointError,
                       match=r"'.*huge.pth' declares \d+ bytes .* in a \d+-"
                       r'byte file'):
        _load_checkpoint(str(path))
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 32768


def _weights_of(value):
    return OrderedDict({'backbone.weight': torch.full((2, 3), value),
                        'backbone.bias': torch.zeros(2)})


def test_each_url_keeps_its_cached_file(zoo, caches):
    """An open-mmlab name, another URL with the same file name, and a zip
    whose one member has that name too: each loads its own weights."""
    for folder, value in (('a', 1.0), ('b', 2.0), ('c', 3.0)):
        (zoo.files / folder).mkdir(exist_ok=True)
        torch.save({'state_dict': _weights_of(value)},
                   zoo.files / folder / 'resnet.pth')
    with zipfile.ZipFile(zoo.files / 'c' / 'pack.zip', 'w') as archive:
        archive.write(zoo.files / 'c' / 'resnet.pth', 'resnet.pth')
    (caches / 'mmengine').mkdir()
    (caches / 'mmengine' / 'open_mmlab.json').write_text(
        json.dumps({'resnet': f'{zoo.http}/a/resnet.pth'}))
    sources = [('open-mmlab://resnet', 1.0), (f'{zoo.http}/b/resnet.pth', 2.0),
               (f'{zoo.http}/c/pack.zip', 3.0)]
    for _ in range(2):
        for source, value in sources:
            weight = _load_checkpoint(source)['state_dict']['backbone.weight']
            assert weight[0, 0].item() == value, source


class _Shell:

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command, ))


class _OneArgumentGetattr:

    def __reduce__(self):
        return (getattr, (HistoryBuffer, ))


@pytest.mark.parametrize('write,reason', [
    (lambda path, marker: path.write_bytes(
        pickle.dumps(_Shell(f'mkdir {marker}'), protocol=2)),
     'system'),
    (lambda path, marker: torch.save({'x': _OneArgumentGetattr()}, path),
     r'refusing getattr\(type\)'),
    (lambda path, marker: torch.save({'x': print}, path),
     'GLOBAL print was not an allowed global'),
], ids=['bare-os-system', 'getattr-one-argument', 'builtin-print'])
def test_refusals_are_unsafe_with_a_reason(write, reason, tmp_path):
    path, marker = tmp_path / 'refused.pth', tmp_path / 'ran'
    write(path, marker)
    with pytest.raises(UnsafeCheckpointError,
                       match=f"'.*refused.pth' was refused.*{reason}"):
        _load_checkpoint(str(path))
    assert not marker.exists()


def test_a_directory_is_named_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match='is a directory'):
        _load_checkpoint(str(tmp_path))
    with pytest.raises(IsADirectoryError, match='teacher checkpoint .* is a '
                       'directory.*teacher_ckpt'):
        load_teacher_checkpoint(Net(), str(tmp_path))


def test_a_missing_url_names_the_url(zoo):
    url = f'{zoo.http}/missing.pth'
    with pytest.raises(CheckpointDownloadError,
                       match=f"could not download checkpoint '{url}'.*404"):
        _load_checkpoint(url)


def test_export_drops_the_config_string_and_loads_a_numpy_1_file(
        tmp_path, monkeypatch):
    """tools/model_converters/export_student.py on an mmseg 0.x model-zoo
    file: the plain checkpoint keeps the meta but no Python config."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    config = str(tmp_path / 'narrow_pspnet.py')  # a PSPNet-R18, 1/8 wide
    Config(dict(
        _base_=osp.abspath(
            'configs/baselines/pspnet-r18_4xb2-80k_cityscapes-512x1024.py'),
        model=dict(
            backbone=dict(stem_channels=8, base_channels=8),
            decode_head=dict(in_channels=64, channels=8),
            auxiliary_head=dict(in_channels=32, channels=8)))).dump(config)
    init_default_scope('mmseg')
    model = MODELS.build(dict(Config.fromfile(config).model, pretrained=None))
    published = dict(mmseg0x_checkpoint(), state_dict=model.state_dict())
    save_crafted(published, tmp_path / 'zoo.pth', numpy1=True)
    out = tmp_path / 'plain.pth'
    monkeypatch.setattr(sys, 'argv', [
        'export_student.py', config, str(tmp_path / 'zoo.pth'), str(out)])
    runpy.run_path(
        'tools/model_converters/export_student.py', run_name='__main__')
    exported = safe_torch_load(out)
    assert 'config' not in exported['meta']
    assert exported['meta']['CLASSES'] == ('road', 'sidewalk')
    assert exported['meta']['env_info'].startswith('sys.platform')
    torch.testing.assert_close(exported['state_dict'], model.state_dict())


def test_a_storage_record_of_another_size_is_named(tmp_path):
    path = tmp_path / 'short.pth'
    save_crafted({'w': torch.zeros(4)}, path, legacy=False, numel=2)
    with pytest.raises(CorruptCheckpointError,
                       match=r"'.*short.pth' .*\(RuntimeError: "):
        _load_checkpoint(str(path))


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
def test_sparse_quantized_and_shared_tensors_pass_the_size_check(
        legacy, tmp_path):
    shared = torch.arange(10.)
    saved = {'sparse': torch.eye(3).to_sparse(), 'view': shared[2:5],
             'whole': shared, 'quantized': torch.quantize_per_tensor(
                 torch.ones(3), 0.1, 0, torch.qint8)}
    path = tmp_path / 'kinds.pth'
    torch.save(saved, path, _use_new_zipfile_serialization=not legacy)
    loaded = safe_torch_load(path)
    torch.testing.assert_close(loaded['sparse'].to_dense(), torch.eye(3))
    torch.testing.assert_close(loaded['view'], shared[2:5])
    torch.testing.assert_close(loaded['quantized'].dequantize(),
                               saved['quantized'].dequantize())
