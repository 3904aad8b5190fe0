"""Make mmengine's local file writes atomic.

mmengine writes checkpoints (and the ``last_checkpoint`` pointer that
``--resume`` follows) straight into their final path, so a crash or a full
disk mid-write leaves a truncated checkpoint that resume then picks. Writing
to a temporary file in the same directory and ``os.replace``-ing it makes a
file either fully old or fully new.
"""
import os
import os.path as osp
import tempfile

from mmengine.fileio.backends import LocalBackend


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` so readers never see a partial file."""
    path = os.fspath(path)
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def _put(self, obj: bytes, filepath) -> None:
    atomic_write_bytes(obj, filepath)


def _put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
    atomic_write_bytes(obj.encode(encoding), filepath)


def make_local_writes_atomic() -> None:
    """Route LocalBackend.put/put_text through :func:`atomic_write_bytes`."""
    LocalBackend.put = _put
    LocalBackend.put_text = _put_text
