"""Load every mmengine checkpoint with ``torch.load(weights_only=True)``.

A pickle can call any Python function while it is read, so a checkpoint
from an untrusted place (a URL, a shared cache) can run code on load.
``weights_only=True`` makes torch refuse every global outside an
allow-list. mmengine checkpoints need a few more than torch allows: numpy
arrays/scalars and ``HistoryBuffer`` objects in the message hub. Those are
allowed only inside this module's loads (``torch.serialization.
safe_globals``), never process-wide. A ``HistoryBuffer`` pickles its
statistics methods through ``builtins.getattr(HistoryBuffer, 'min')``;
rather than allowing ``getattr`` on anything, that name resolves to a
function that only returns public methods of HistoryBuffer.

mmengine's ``CheckpointLoader`` reads every scheme it knows in
``mmengine.runner.checkpoint``: with ``torch.load`` (local files, pavi,
s3/petrel, open-mmlab names that map to local files) or with ``load_url``
(http/https, and through it torchvision, mmcls and open-mmlab names that
map to URLs; ``load_url`` downloads into torch hub's cache, then loads
with ``weights_only=False``). :func:`make_checkpoint_loads_safe` gives that
module a ``torch`` whose ``load`` is :func:`safe_torch_load`, and a
``load_url`` that loads the cached download the same way, so every scheme
(and every later load of a cached copy) goes through one loader.

Failures become errors that name the file and the problem: a well-formed
pickle that needs globals outside the allow-list is
:class:`UnsafeCheckpointError`; random, truncated or empty bytes are
:class:`CorruptCheckpointError`.
"""
import contextlib
import io
import os
import os.path as osp
import pickle
import pickletools
import threading
import types
import zipfile
from typing import IO, Iterator, Union
from urllib.parse import urlparse

import numpy as np
import torch

FileLike = Union[str, os.PathLike, IO[bytes]]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated, corrupt or not a torch checkpoint."""


def _history_buffer_getattr(obj, name):
    """Stand-in for ``builtins.getattr`` while unpickling checkpoints."""
    from mmengine.logging import HistoryBuffer
    owner = obj if isinstance(obj, type) else type(obj)
    if issubclass(owner, HistoryBuffer) and not name.startswith('_') \
            and callable(getattr(owner, name, None)):
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'refusing getattr({type(obj).__name__}, {name!r}) while unpickling')


def _numpy_globals() -> list:
    multiarray = getattr(np, '_core', None) or np.core
    names = [multiarray.multiarray._reconstruct, multiarray.multiarray.scalar,
             np.ndarray, np.dtype]
    dtype_classes = getattr(np, 'dtypes', None)
    if dtype_classes is not None:
        names += [getattr(dtype_classes, n) for n in dir(dtype_classes)
                  if n.endswith('DType')]
    return names


def mmengine_checkpoint_globals() -> list:
    """The globals mmengine checkpoints need beyond torch's own allow-list.

    Returns:
        list: entries for ``torch.serialization.safe_globals``.
    """
    from mmengine.logging import HistoryBuffer
    return [
        HistoryBuffer, *_numpy_globals(),
        (_history_buffer_getattr, 'builtins.getattr'),
        (_history_buffer_getattr, '__builtin__.getattr')
    ]


# torch keeps the allowed globals in one process-wide set; loads in two
# threads must not remove each other's entries halfway through.
_ALLOW_LIST_LOCK = threading.RLock()


@contextlib.contextmanager
def _mmengine_globals_allowed() -> Iterator[None]:
    """Allow :func:`mmengine_checkpoint_globals` for the block only.

    Entries the user had allowed already are left in place afterwards.
    """
    with _ALLOW_LIST_LOCK:
        already = torch.serialization.get_safe_globals()
        added = [g for g in mmengine_checkpoint_globals() if g not in already]
        with torch.serialization.safe_globals(added):
            yield


def _pickles_complete(stream: IO[bytes], count: int) -> bool:
    """Whether ``stream`` starts with ``count`` complete pickles."""
    try:
        for _ in range(count):
            for _ in pickletools.genops(stream):
                pass
    # ValueError: an unknown opcode, or the bytes end before STOP;
    # MemoryError/OverflowError: a length field far beyond the file, which
    # the reader tries to allocate.
    except (ValueError, MemoryError, OverflowError):
        return False
    return True


def _is_well_formed(f: FileLike) -> bool:
    """Whether ``f`` holds complete pickles where ``torch.load`` reads them:
    ``*/data.pkl`` of an intact zip checkpoint (every CRC checked), or the
    four leading pickles of the legacy format (magic number, protocol,
    system info, the object). Only called after a load failed."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as stream:
            return _is_well_formed(stream)
    f.seek(0)
    if not zipfile.is_zipfile(f):
        f.seek(0)
        return _pickles_complete(f, count=4)
    try:
        with zipfile.ZipFile(f) as archive:
            names = [n for n in archive.namelist()
                     if n.rsplit('/', 1)[-1] == 'data.pkl']
            if len(names) != 1 or archive.testzip() is not None:
                return False
            data = archive.read(names[0])
    except (zipfile.BadZipFile, OSError):
        return False
    return _pickles_complete(io.BytesIO(data), count=1)


def _torch_reason(err: BaseException) -> str:
    """torch's explanation of a failed load, without its advice to retry
    with ``weights_only=False``."""
    if isinstance(err, EOFError):
        return 'the file ends before the checkpoint does'
    paragraphs = [p.strip() for p in str(err).split('\n\n')]
    return ' '.join(
        p for p in paragraphs if p and not p.startswith(
            ('Weights only load failed', 'Check the documentation')))


@contextlib.contextmanager
def _refusing_unsafe_or_corrupt(name: str, f: FileLike) -> Iterator[None]:
    """Run a ``torch.load`` of ``f`` with the allow-list, and turn its
    failures into errors naming ``name``: :class:`CorruptCheckpointError`
    when the bytes are not a well-formed checkpoint, else
    :class:`UnsafeCheckpointError` when the unpickler refused it."""
    try:
        with _mmengine_globals_allowed():
            yield
    except Exception as err:
        if isinstance(f, (str, os.PathLike)) and not osp.isfile(f):
            raise  # nothing was read (e.g. a failed download)
        if isinstance(err, EOFError) or not _is_well_formed(f):
            raise CorruptCheckpointError(_corrupt(name, err)) from None
        if isinstance(err, pickle.UnpicklingError):
            raise UnsafeCheckpointError(
                f'checkpoint {name} was refused: it holds pickled objects '
                'that are not allow-listed, which could run code while '
                f'loading ({_torch_reason(err)}). Nothing in it was '
                'executed. If you trust the file, re-save its tensors (a '
                'plain state_dict).') from None
        raise


def _corrupt(name: str, err: BaseException) -> str:
    return (f'checkpoint {name} is corrupt, truncated, empty or not a '
            f'PyTorch checkpoint ({_torch_reason(err)}); fetch or save it '
            'again.')


def _describe(f: FileLike) -> str:
    if isinstance(f, (str, os.PathLike)):
        return repr(os.fspath(f))
    name = getattr(f, 'name', None)
    return 'read from a stream' if name is None else repr(name)


def safe_torch_load(f: FileLike, map_location=None):
    """``torch.load(f, weights_only=True)`` with mmengine's globals allowed.

    Args:
        f (str | PathLike | file): a checkpoint file or a binary stream.
        map_location: as for ``torch.load``.

    Raises:
        UnsafeCheckpointError: ``f`` is a well-formed pickle that needs
            globals outside the allow-list (nothing in it is executed).
        CorruptCheckpointError: ``f`` is truncated, empty or not a torch
            checkpoint.
    """
    with _refusing_unsafe_or_corrupt(_describe(f), f):
        return torch.load(f, map_location=map_location, weights_only=True)


def load_from_local(filename: str, map_location=None):
    """mmengine's local-file loader, safely, with errors that say why.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError, CorruptCheckpointError: see
            :func:`safe_torch_load`.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    return safe_torch_load(filename, map_location)


def load_url(url: str,
             model_dir: str = None,
             map_location=None,
             progress: bool = True,
             check_hash: bool = False,
             file_name: str = None):
    """mmengine's ``load_url`` (torch hub's ``load_state_dict_from_url``:
    download once into ``TORCH_HOME/hub/checkpoints``), loading the cached
    file with ``weights_only=True`` every time, cache hits included.

    Raises:
        UnsafeCheckpointError, CorruptCheckpointError: as
            :func:`safe_torch_load`; the message names the cached copy.
    """
    # The path load_state_dict_from_url downloads to.
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(model_dir, file_name or osp.basename(urlparse(url).path))
    with _refusing_unsafe_or_corrupt(f'{url!r} (cached as {cached!r})',
                                     cached):
        return torch.hub.load_state_dict_from_url(
            url, model_dir, map_location, progress, check_hash, file_name,
            weights_only=True)


class _TorchWithSafeLoad(types.ModuleType):
    """``torch`` as ``mmengine.runner.checkpoint`` sees it: ``load`` is
    :func:`safe_torch_load`, everything else is torch itself."""

    def __init__(self) -> None:
        super().__init__('torch', torch.__doc__)

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def load(f: FileLike, map_location=None):
        return safe_torch_load(f, map_location)


def make_checkpoint_loads_safe() -> None:
    """Route every ``CheckpointLoader`` scheme through
    :func:`safe_torch_load` (see the module docstring)."""
    from mmengine.runner import checkpoint
    checkpoint.torch = _TorchWithSafeLoad()
    checkpoint.load_url = load_url
    checkpoint.CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
