"""Checkpoint files: readable as ``open`` would leave them, never partial,
no leftovers, and ``--resume`` survives a bad ``last_checkpoint``."""
import builtins
import os
import os.path as osp
import re
import shutil
import signal
import socket
import time
import zipfile

import pytest
import torch
from mmengine.fileio import LocalBackend
from mmengine.hooks import checkpoint_hook
from mmengine.runner import Runner, runner as runner_module, save_checkpoint

from gdkd_seg.compat import atomic_write_bytes
from gdkd_seg.compat.atomic_write import host_tag
from toy_run import Toy, ToyInputs

ITERS = 3


def toy_runner(work_dir, resume=False, **overrides):
    """A 3-iteration run saving a checkpoint (and its pointer) each step;
    ``overrides`` replace its Runner arguments."""
    return Runner(**{
        'model': Toy(),
        'work_dir': str(work_dir),
        'experiment_name': f'toy_{time.monotonic_ns()}',
        # The scope the rest of the suite builds in (a runner makes its
        # scope the process's current one).
        'default_scope': 'mmseg',
        'train_dataloader': dict(
            dataset=ToyInputs(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2),
        'train_cfg': dict(by_epoch=False, max_iters=ITERS),
        'optim_wrapper': dict(optimizer=dict(type='SGD', lr=0.1)),
        'default_hooks': dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            by_epoch=False)),
        'resume': resume,
        **overrides
    })


def _mode(path):
    return os.stat(path).st_mode & 0o777


@pytest.fixture
def umask():
    """Set the process umask for a test, and restore it afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """The work dir of a finished toy run, written under umask 022."""
    work_dir = tmp_path_factory.mktemp('trained')
    previous = os.umask(0o022)
    try:
        toy_runner(work_dir).train()
    finally:
        os.umask(previous)
    return work_dir


def test_checkpoints_and_pointer_are_written_whole_and_team_readable(
        trained):
    names = sorted(os.listdir(trained))
    assert [n for n in names if n.endswith('.pth')] == \
        [f'iter_{i}.pth' for i in range(1, ITERS + 1)]
    assert not [n for n in names if n.endswith('.tmp')]
    pointer = trained / 'last_checkpoint'
    assert pointer.read_text() == str(trained / f'iter_{ITERS}.pth')
    for path in (pointer, trained / f'iter_{ITERS}.pth'):
        assert _mode(path) == 0o644


@pytest.mark.parametrize('mask', [0o022, 0o027, 0o077],
                         ids=['022', '027', '077'])
def test_written_files_get_the_mode_open_would_give(mask, umask, tmp_path):
    umask(mask)
    with open(tmp_path / 'plain', 'wb'):
        pass
    atomic_write_bytes(b'student', tmp_path / 'exported.pth')
    save_checkpoint({'w': torch.zeros(1)}, str(tmp_path / 'iter_1.pth'))
    LocalBackend().put_text('x', tmp_path / 'notes.txt')
    for name in ('exported.pth', 'iter_1.pth', 'notes.txt'):
        assert _mode(tmp_path / name) == _mode(tmp_path / 'plain') \
            == 0o666 & ~mask


def test_overwriting_keeps_the_files_mode(umask, tmp_path):
    path = tmp_path / 'shared.pth'
    atomic_write_bytes(b'v1', path)
    path.chmod(0o664)
    atomic_write_bytes(b'v2', path)
    assert path.read_bytes() == b'v2' and _mode(path) == 0o664


def test_the_file_and_then_its_directory_are_synced(tmp_path, monkeypatch):
    """fsync of the file before the rename, of the directory after it: a
    power loss then leaves the old file or the new one, never an empty
    name."""
    import stat
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    atomic_write_bytes(b'weights', tmp_path / 'ckpt.pth')
    assert synced == [False, True]
    assert (tmp_path / 'ckpt.pth').read_bytes() == b'weights'


def test_an_interrupted_pointer_write_keeps_the_previous_pointer(tmp_path):
    pointer = tmp_path / 'last_checkpoint'
    pointer.write_text(str(tmp_path / 'iter_1.pth'))
    # The `open` CheckpointHook's code resolves: its module's, else the
    # builtin, which would already have emptied the file here.
    hook_open = vars(checkpoint_hook).get('open', builtins.open)
    with pytest.raises(KeyboardInterrupt):
        with hook_open(str(pointer), 'w'):
            raise KeyboardInterrupt
    assert pointer.read_text() == str(tmp_path / 'iter_1.pth')


def _copy_run(trained, tmp_path, pointer):
    work_dir = tmp_path / 'run'
    shutil.copytree(trained, work_dir)
    if pointer is None:
        os.unlink(work_dir / 'last_checkpoint')
    else:
        (work_dir / 'last_checkpoint').write_text(pointer)
    # A newer checkpoint cut short (as a non-atomic writer leaves it).
    newest = (work_dir / f'iter_{ITERS}.pth').read_bytes()
    (work_dir / f'iter_{ITERS + 1}.pth').write_bytes(newest[:1000])
    return work_dir


@pytest.mark.parametrize('pointer', ['', '/gone/iter_9.pth', None],
                         ids=['empty', 'dangling', 'missing'])
def test_resume_falls_back_to_the_newest_complete_checkpoint(
        pointer, trained, tmp_path):
    work_dir = _copy_run(trained, tmp_path, pointer)
    # The name Runner.load_or_resume calls.
    assert runner_module.find_latest_checkpoint(str(work_dir)) == \
        str(work_dir / f'iter_{ITERS}.pth')


def test_runner_resumes_past_an_empty_pointer(trained, tmp_path):
    work_dir = _copy_run(trained, tmp_path, '')
    runner = toy_runner(work_dir, resume=True)
    runner.load_or_resume()
    assert runner.iter == ITERS
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert f'last_checkpoint is empty: resuming from {work_dir}' in log


def test_runner_resumes_past_a_pointer_to_a_corrupt_file(trained, tmp_path):
    work_dir = tmp_path / 'run'
    newest = work_dir / f'iter_{ITERS}.pth'
    _copy_run(trained, tmp_path, str(newest))
    newest.write_bytes(newest.read_bytes()[:1000])
    runner = toy_runner(work_dir, resume=True)
    runner.load_or_resume()
    assert runner.iter == ITERS - 1
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert f'not resuming from {newest}: checkpoint' in log
    assert 'is corrupt, truncated' in log
    assert f"last_checkpoint names '{newest}', which does not load: " \
        f'resuming from {work_dir}/iter_{ITERS - 1}.pth' in log


def _killed_mid_save(path, host=None):
    """Fork a process that dies in atomic_write_bytes before its rename
    (seen by the files as running on machine ``host``, if given)."""
    pid = os.fork()
    if pid == 0:
        try:
            if host is not None:
                socket.gethostname = lambda: host
            os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
            atomic_write_bytes(b'x' * 4096, path)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    return [n for n in os.listdir(osp.dirname(path)) if n.endswith('.tmp')]


@pytest.mark.parametrize('next_step', ['save', 'resume'])
def test_temporaries_of_killed_saves_are_removed(next_step, tmp_path):
    leftover, = _killed_mid_save(str(tmp_path / 'iter_2.pth'))
    assert os.path.getsize(tmp_path / leftover) == 4096
    foreign = tmp_path / '.notes.abc.tmp'
    foreign.write_text('not ours')
    if next_step == 'save':
        atomic_write_bytes(b'y', tmp_path / 'iter_3.pth')
    else:
        runner_module.find_latest_checkpoint(str(tmp_path))
    assert not (tmp_path / leftover).exists()
    assert foreign.exists()


@pytest.mark.parametrize('next_step', ['save', 'resume'])
def test_other_machines_temporaries_are_left_alone(next_step, tmp_path):
    """A shared work dir: a process id that is not alive here may be a
    writer in flight on another machine."""
    other, = _killed_mid_save(str(tmp_path / 'iter_2.pth'), host='node.b_7')
    assert '@node-b-7-' in other
    unknown = tmp_path / '.iter_1.pth.999999999.0123abcd.tmp'
    unknown.write_bytes(b'no machine named')
    if next_step == 'save':
        atomic_write_bytes(b'y', tmp_path / 'iter_3.pth')
    else:
        runner_module.find_latest_checkpoint(str(tmp_path))
    assert (tmp_path / other).exists() and unknown.exists()


def test_long_host_names_that_differ_at_the_end_stay_apart(monkeypatch):
    tags = set()
    for host in ('gpu-node-0001.cluster.example.org',
                 'gpu-node-0001.cluster.example.net'):
        monkeypatch.setattr(socket, 'gethostname', lambda: host)
        tags.add(host_tag())
    assert len(tags) == 2 and all(len(t) == 32 for t in tags)


def test_host_names_that_sanitise_alike_stay_apart(monkeypatch):
    tags = []
    for host in ('gpu_01', 'gpu.01', 'gpu-01'):
        monkeypatch.setattr(socket, 'gethostname', lambda: host)
        tags.append(host_tag())
    assert len(set(tags)) == 3 and tags[2] == 'gpu-01'
    assert all(re.fullmatch(r'gpu-01-[0-9a-f]{8}', t) for t in tags[:2])


def test_resume_picks_the_highest_iteration_that_loads(trained, tmp_path):
    work_dir = _copy_run(trained, tmp_path, None)
    # Times say nothing after a copy: iter_1 looks newest.
    os.utime(work_dir / 'iter_1.pth', (time.time() + 60, ) * 2)
    # A whole zip archive that is no checkpoint.
    with zipfile.ZipFile(work_dir / f'iter_{ITERS + 2}.pth', 'w') as z:
        z.writestr('archive/data.pkl', b'not a pickle')
    assert runner_module.find_latest_checkpoint(str(work_dir)) == \
        str(work_dir / f'iter_{ITERS}.pth')
