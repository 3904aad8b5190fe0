"""Make mmengine's local checkpoint writes atomic.

mmengine writes checkpoints (``LocalBackend.put``) and the
``last_checkpoint`` pointer that ``--resume`` follows (``CheckpointHook``,
with a plain ``open``) straight into their final path, so a crash or a full
disk mid-write leaves a truncated checkpoint or an empty pointer. Writing to
a temporary file in the same directory and ``os.replace``-ing it makes a
file either fully old or fully new.

The temporary is created the way ``open(path, 'wb')`` creates a file, so
the result gets the same mode (``0o666`` less the umask; an overwritten file
keeps its mode). Its name, ``.NAME.PID@HOST.RANDOM.tmp``, records the
writing process and machine (HOST is the host name if it is at most 32
characters of ``[A-Za-z0-9-]``; otherwise its first 23 characters, each
one outside that set replaced by ``-``, then ``-`` and 8 hex digits of a
hash of the whole name, so names that differ only in the replaced
characters or past the cut stay apart): a write
killed before the rename leaves it behind, and the next write into that
directory (or a resume from it) on the same machine removes it once its
process is gone. Temporaries of other machines sharing the directory (a
multi-node sweep on a network file system) are never removed, as a process
id says nothing about another machine; neither are ``.NAME.PID.RANDOM.tmp``
files, which name no machine.
"""
import contextlib
import hashlib
import io
import locale
import os
import os.path as osp
import re
import secrets
import shutil
import socket

from mmengine.fileio.backends import LocalBackend

_TEMPORARY = re.compile(
    r'^\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[0-9a-f]{8}\.tmp$')


def host_tag() -> str:
    """This machine's name as temporaries carry it (see the module
    docstring)."""
    host = socket.gethostname()
    tag = re.sub(r'[^A-Za-z0-9-]', '-', host)
    if tag != host or len(tag) > 32:  # gpu_01, gpu.01 and gpu-01 stay apart
        tag = f'{tag[:23]}-{hashlib.sha256(host.encode()).hexdigest()[:8]}'
    return tag


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def _writer_is_gone(pid: int, host: str) -> bool:
    """Whether process ``pid`` of machine ``host`` is known to have ended:
    only this machine's processes can be looked up, and this process's own
    temporaries belong to writes in flight."""
    return host == host_tag() and pid != os.getpid() \
        and not process_alive(pid)


def remove_stale_temporaries(directory: str) -> None:
    """Delete what killed :func:`atomic_write_bytes` calls left behind.

    Only names of this module's pattern written on this machine by a
    process that no longer runs are removed; other machines' temporaries
    are left to them.
    """
    for name in os.listdir(directory):
        match = _TEMPORARY.match(name)
        if match and _writer_is_gone(int(match['pid']), match['host']):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(osp.join(directory, name))


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` so readers never see a partial file.

    The file gets the mode ``open(path, 'wb')`` would give it.
    """
    path = osp.abspath(os.fspath(path))
    directory, name = osp.split(path)
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(directory)
    tmp = osp.join(
        directory,
        f'.{name}.{os.getpid()}@{host_tag()}.{secrets.token_hex(4)}.tmp')
    # As open(path, 'wb') does: the kernel applies the umask to 0o666.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if osp.exists(path):
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Persist the rename itself (POSIX; a no-op where a directory cannot
    be opened or synced, e.g. on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


class _AtomicTextFile(io.StringIO):
    """A text file written with :func:`atomic_write_bytes` when its
    ``with`` block ends without an error (and not written otherwise)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            atomic_write_bytes(
                self.getvalue().encode(locale.getpreferredencoding(False)),
                self.path)
        return super().__exit__(exc_type, exc, traceback)


def _open_with_atomic_pointer(file, mode: str = 'r', *args, **kwargs):
    """``open`` for ``mmengine.hooks.checkpoint_hook``: writing the
    ``last_checkpoint`` pointer is atomic, everything else is ``open``."""
    if mode == 'w' and osp.basename(file) == 'last_checkpoint':
        return _AtomicTextFile(file)
    return open(file, mode, *args, **kwargs)


def _put(self, obj: bytes, filepath) -> None:
    atomic_write_bytes(obj, filepath)


def _put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
    atomic_write_bytes(obj.encode(encoding), filepath)


def make_local_writes_atomic() -> None:
    """Route LocalBackend.put/put_text and CheckpointHook's
    ``last_checkpoint`` write through :func:`atomic_write_bytes`."""
    from mmengine.hooks import checkpoint_hook
    LocalBackend.put = _put
    LocalBackend.put_text = _put_text
    # The hook writes the pointer with the builtin ``open``; a module-level
    # ``open`` is the one name it looks up first.
    checkpoint_hook.open = _open_with_atomic_pointer
