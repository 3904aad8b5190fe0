"""Load every mmengine checkpoint with ``torch.load(weights_only=True)``.

A pickle can call any Python function while it is read, so a checkpoint
from an untrusted place (a URL, a shared cache) can run code on load.
``weights_only=True`` makes torch refuse every global outside an
allow-list. mmengine checkpoints need a few more than torch allows: numpy
arrays/scalars (under their numpy 2 names and the ``numpy.core.*`` names
numpy 1.x wrote, which model-zoo and older mmengine checkpoints hold) and
``HistoryBuffer`` objects in the message hub. Those are allowed only inside
this module's loads (``torch.serialization.safe_globals``), never
process-wide. A ``HistoryBuffer`` is restored as plain data: its own
``__setstate__`` would copy the checkpoint's statistics methods into the
class, for every buffer of the process; only the buffer's data (its values,
counts and maximum length) is kept. It pickles those methods through
``builtins.getattr(HistoryBuffer, 'min')``; rather than allowing
``getattr`` on anything, that name resolves to a function that only returns
public methods of HistoryBuffer.

mmengine's ``CheckpointLoader`` reads every scheme it knows in
``mmengine.runner.checkpoint``: with ``torch.load`` (local files, pavi,
s3/petrel, open-mmlab names that map to local files) or with ``load_url``
(http/https, and through it torchvision, mmcls and open-mmlab names that
map to URLs; ``load_url`` downloads into torch hub's cache, then loads
with ``weights_only=False``). :func:`make_checkpoint_loads_safe` gives that
module a ``torch`` whose ``load`` is :func:`safe_torch_load`, and a
``load_url`` that downloads into a cache folder of its own per URL (two
URLs with one file name, or a zip whose member has another URL's name,
cannot replace each other's file) and loads the cached copy the same way,
so every scheme (and every later load of a cached copy) goes through one
loader.

Before anything is allocated, the sizes a checkpoint declares (its zip
entries, and the tensor storages its pickle names, read from the pickle's
opcodes without running them, each storage key at its largest declaration)
are compared with its file: torch stores
tensors uncompressed, so
more than :data:`MAX_EXPANSION` times the file's size is a crafted or
broken file (a zip bomb, a storage of 2**33 floats in 16 bytes), refused as
:class:`CorruptCheckpointError` rather than run out of memory.

Failures become errors that name the file and the problem: a well-formed
pickle that needs globals outside the allow-list is
:class:`UnsafeCheckpointError`; random, truncated or empty bytes, and
well-formed pickles whose allowed calls fail, are
:class:`CorruptCheckpointError`; a failed download is
:class:`CheckpointDownloadError` naming the URL.
"""
import contextlib
import functools
import hashlib
import io
import math
import os
import os.path as osp
import pickle
import pickletools
import re
import threading
import types
import warnings
import zipfile
from typing import IO, Iterator, Union
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

FileLike = Union[str, os.PathLike, IO[bytes]]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated, corrupt or not a torch checkpoint."""


class CheckpointDownloadError(OSError):
    """A checkpoint URL could not be downloaded."""


# torch writes tensors uncompressed: a checkpoint declaring more bytes than
# this many times its file's size is crafted or broken.
MAX_EXPANSION = 16


def _history_buffer_getattr(*args):
    """Stand-in for ``builtins.getattr`` while unpickling checkpoints."""
    if len(args) == 2 and isinstance(args[1], str):
        obj, name = args
        owner = obj if isinstance(obj, type) else type(obj)
        if issubclass(owner, HistoryBuffer) and not name.startswith('_') \
                and callable(getattr(owner, name, None)):
            return getattr(obj, name)
    shown = ', '.join(
        type(a).__name__ if not isinstance(a, str) else repr(a) for a in args)
    raise UnsafeCheckpointError(
        f'refusing getattr({shown}) while unpickling: only public methods '
        'of HistoryBuffer are allowed')


class _LoadedHistoryBuffer(HistoryBuffer):
    """What a checkpoint's ``HistoryBuffer`` is unpickled as: its state is
    set as data, without the checkpoint's statistics methods (see the module
    docstring), and the object is then a plain ``HistoryBuffer``."""

    # What a HistoryBuffer holds as data; everything else in a checkpoint's
    # state (statistics methods under any name) is dropped.
    _DATA_KEYS = ('max_length', '_log_history', '_count_history')

    def __setstate__(self, state: dict) -> None:
        self._set_default_statistics()
        self.__dict__.update(
            (k, v) for k, v in state.items() if k in self._DATA_KEYS)
        self.__class__ = HistoryBuffer


def _numpy_globals() -> list:
    multiarray = (getattr(np, '_core', None) or np.core).multiarray
    names = [np.ndarray, np.dtype]
    # numpy 1.x wrote these as numpy.core.multiarray.*, numpy 2 as
    # numpy._core.multiarray.*: both names map to the function itself.
    for function in (multiarray._reconstruct, multiarray.scalar):
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            names.append((function, f'{module}.{function.__name__}'))
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
    return [
        (_LoadedHistoryBuffer,
         'mmengine.logging.history_buffer.HistoryBuffer'), *_numpy_globals(),
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


class _BoundedReader:
    """A binary stream whose ``read(n)`` never asks for more than the bytes
    left before ``end`` (a pickle's length field of 2**62 is not
    allocated)."""

    def __init__(self, stream: IO[bytes], end: int) -> None:
        self.stream = stream
        self.end = end
        self.readline = stream.readline

    def read(self, n: int = -1) -> bytes:
        left = max(self.end - self.stream.tell(), 0)
        return self.stream.read(left if n is None or n < 0 else min(n, left))


def _size(stream: IO[bytes]) -> int:
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    return size


def _pickles_complete(stream, count: int) -> bool:
    """Whether ``stream`` continues with ``count`` complete pickles."""
    try:
        for _ in range(count):
            for _ in pickletools.genops(stream):
                pass
    # ValueError: an unknown opcode, or the bytes end before STOP.
    except ValueError:
        return False
    return True


def _is_well_formed(f: FileLike) -> bool:
    """Whether ``f`` holds complete pickles where ``torch.load`` reads them:
    ``*/data.pkl`` of an intact zip checkpoint (every CRC checked), the
    four leading pickles of the legacy format (magic number, protocol,
    system info, the object), or one pickle and nothing else. Only called
    after a load failed, and after :func:`_refuse_absurd_sizes`."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as stream:
            return _is_well_formed(stream)
    reader = _BoundedReader(f, _size(f))
    if not zipfile.is_zipfile(f):
        f.seek(0)
        if _pickles_complete(reader, count=4):
            return True
        f.seek(0)
        return _pickles_complete(reader, count=1) and not reader.read(1)
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


@functools.lru_cache(maxsize=None)
def _element_size(storage_type) -> int:
    """Bytes per element of a pickled ``torch.*Storage`` global; 16 (the
    largest) for names torch does not define."""
    if storage_type == ('torch', 'UntypedStorage'):
        return 1
    with warnings.catch_warnings():  # the legacy classes are deprecated
        warnings.simplefilter('ignore')
        dtype = getattr(vars(torch).get(storage_type[1]), 'dtype', None) \
            if isinstance(storage_type, tuple) and len(storage_type) == 2 \
            and storage_type[0] == 'torch' else None
    return torch._utils._element_size(dtype) \
        if isinstance(dtype, torch.dtype) else 16


def _storage_bytes(stream) -> int:
    """The bytes of the tensor storages a torch pickle declares, read from
    its opcodes and never run: a stack machine that follows literals,
    globals, tuples and the memo (anything else it builds is a placeholder)
    up to each persistent id ``('storage', TYPE, KEY, LOCATION, NUMEL,
    ...)``. A NUMEL that is no literal counts as unbounded."""
    mark, unknown = object(), None
    stack, memo, declared = [], {}, {}
    for op, arg, _ in pickletools.genops(stream):
        if op.name == 'MARK':
            stack.append(mark)
            continue
        if op.name in ('PUT', 'BINPUT', 'LONG_BINPUT', 'MEMOIZE'):
            memo[len(memo) if arg is None else arg] = stack[-1]
            continue
        if op.name in ('GET', 'BINGET', 'LONG_BINGET'):
            stack.append(memo.get(arg))
            continue
        before, items = op.stack_before, []
        if pickletools.markobject in before:  # [below..., mark, slice]
            at = len(stack) - 1 - stack[::-1].index(mark)
            items, stack[at:] = stack[at + 1:], []
            before = before[:before.index(pickletools.markobject)]
        args = stack[len(stack) - len(before):]
        del stack[len(stack) - len(before):]
        if op.name == 'TUPLE':
            stack.append(tuple(items))
        elif op.name in ('TUPLE1', 'TUPLE2', 'TUPLE3', 'EMPTY_TUPLE'):
            stack.append(tuple(args))
        elif op.name == 'GLOBAL':
            stack.append(tuple(arg.split(' ', 1)))
        elif op.name == 'STACK_GLOBAL':
            stack.append(tuple(args))
        elif op.name == 'BINPERSID':
            pid = args[0]
            if isinstance(pid, tuple) and len(pid) >= 5 \
                    and pid[0] == 'storage':
                numel = pid[4] if isinstance(pid[4], int) else math.inf
                # torch allocates a key's storage at its first declaration
                # and reuses it; the largest one bounds every order.
                declared[pid[2]] = max(declared.get(pid[2], 0),
                                       numel * _element_size(pid[1]))
            stack.append(unknown)
        elif op.arg is not None and not op.stack_before \
                and len(op.stack_after) == 1:
            stack.append(arg)  # a literal
        else:
            stack.extend([unknown] * len(op.stack_after))
    return sum(declared.values())


def _declared_bytes(f: IO[bytes], size: int) -> int:
    """What ``f`` declares it holds: its zip entries uncompressed and the
    storages of its ``data.pkl``, or the storages of the legacy format's
    object pickle (0 for other layouts, which ``torch.load`` refuses)."""
    limit = MAX_EXPANSION * size
    if zipfile.is_zipfile(f):
        f.seek(0)
        with zipfile.ZipFile(f) as archive:
            entries = archive.infolist()
            total = sum(e.file_size for e in entries)
            pickles = [e for e in entries
                       if e.filename.rsplit('/', 1)[-1] == 'data.pkl']
            if total > limit or len(pickles) != 1:
                return total
            data = archive.read(pickles[0])
        return max(total, _storage_bytes(io.BytesIO(data)))
    f.seek(0)
    reader = _BoundedReader(f, size)
    if not _pickles_complete(reader, count=3):
        return 0
    return _storage_bytes(reader)


class _DeclaresTooMuch(Exception):
    """A checkpoint declares ``declared`` bytes in a ``size``-byte file."""

    def __init__(self, declared: int, size: int) -> None:
        super().__init__(declared, size)
        self.declared, self.size = declared, size


def _refuse_absurd_sizes(f: FileLike) -> None:
    """Raise :class:`_DeclaresTooMuch` if ``f`` declares more than
    :data:`MAX_EXPANSION` times its file's size, before anything of that
    size is allocated."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as stream:
            return _refuse_absurd_sizes(stream)
    start = f.tell()
    try:
        size = _size(f)
        declared = _declared_bytes(f, size)
    finally:
        f.seek(start)
    if declared > MAX_EXPANSION * size:
        raise _DeclaresTooMuch(declared, size)


# What torch wraps an unpickler's reason in (advice to retry with
# weights_only=False or to allow-list the global included).
_TORCH_BOILERPLATE = re.compile(
    r'Weights only load failed\.|This file can still be loaded.*?following '
    r'error message\.|In PyTorch 2\.6, we changed.*?trusted source\.|'
    r'Please file an issue.*?use case:|WeightsUnpickler error:|'
    r'Please use `torch\.serialization.*?class/function\.|'
    r'Check the documentation of torch\.load.*?\.html\.', re.S)


def _torch_reason(err: BaseException) -> str:
    """Why a load failed, never empty: the unpickler's reason without
    torch's boilerplate, or the error of a call the pickle made."""
    if isinstance(err, EOFError):
        return 'the file ends before the checkpoint does'
    reason = ' '.join(_TORCH_BOILERPLATE.sub(' ', str(err)).split())
    if not isinstance(err, pickle.UnpicklingError):
        reason = f'{type(err).__name__}: {reason}' if reason \
            else type(err).__name__
    return reason or 'the unpickler gave no reason'


@contextlib.contextmanager
def _refusing_unsafe_or_corrupt(name: str, f: FileLike) -> Iterator[None]:
    """Run a ``torch.load`` of ``f`` with the allow-list, and turn its
    failures into errors naming ``name``: :class:`UnsafeCheckpointError`
    when the unpickler refused a well-formed pickle, else
    :class:`CorruptCheckpointError` (bytes that are no well-formed
    checkpoint, or a well-formed one whose load failed)."""
    try:
        with _mmengine_globals_allowed():
            yield
    except _DeclaresTooMuch as err:
        raise CorruptCheckpointError(
            f'checkpoint {name} declares {err.declared} bytes of contents in '
            f'a {err.size}-byte file, more than {MAX_EXPANSION} times its '
            'size (torch stores tensors uncompressed): it is corrupt or '
            'crafted. Nothing of that size was allocated.') from None
    except Exception as err:
        if isinstance(f, (str, os.PathLike)) and not osp.isfile(f):
            raise  # nothing was read
        if isinstance(err, EOFError) or not _is_well_formed(f):
            raise CorruptCheckpointError(
                f'checkpoint {name} is corrupt, truncated, empty or not a '
                f'PyTorch checkpoint ({_torch_reason(err)}); fetch or save '
                'it again.') from None
        if isinstance(err, pickle.UnpicklingError):
            raise UnsafeCheckpointError(
                f'checkpoint {name} was refused: it holds pickled objects '
                'that are not allow-listed, which could run code while '
                f'loading ({_torch_reason(err)}). Nothing in it was '
                'executed. If you trust the file, re-save its tensors (a '
                'plain state_dict).') from None
        raise CorruptCheckpointError(
            f'checkpoint {name} is well-formed but could not be loaded '
            f'({_torch_reason(err)})') from None


def _describe(f: FileLike) -> str:
    if isinstance(f, (str, os.PathLike)):
        return repr(os.fspath(f))
    name = getattr(f, 'name', None)
    return 'read from a stream' if name is None else repr(name)


def _load(f: FileLike, name: str, map_location):
    with _refusing_unsafe_or_corrupt(name, f):
        _refuse_absurd_sizes(f)
        return torch.load(f, map_location=map_location, weights_only=True)


def safe_torch_load(f: FileLike, map_location=None):
    """``torch.load(f, weights_only=True)`` with mmengine's globals allowed.

    Args:
        f (str | PathLike | file): a checkpoint file or a seekable binary
            stream.
        map_location: as for ``torch.load``.

    Raises:
        UnsafeCheckpointError: ``f`` is a well-formed pickle that needs
            globals outside the allow-list (nothing in it is executed).
        CorruptCheckpointError: ``f`` is truncated, empty, not a torch
            checkpoint, or declares far more than its size.
    """
    return _load(f, _describe(f), map_location)


def local_file_problem(path: str, what: str = 'checkpoint'):
    """The error for a local ``path`` that is no file, or None.

    Returns:
        IsADirectoryError | FileNotFoundError | None
    """
    if osp.isfile(path):
        return None
    if osp.isdir(path):
        return IsADirectoryError(f'{what} {path!r} is a directory, not a '
                                 'file')
    return FileNotFoundError(f'{what} {path!r} does not exist')


def load_from_local(filename: str, map_location=None):
    """mmengine's local-file loader, safely, with errors that say why.

    Raises:
        FileNotFoundError, IsADirectoryError: no file at ``filename``.
        UnsafeCheckpointError, CorruptCheckpointError: see
            :func:`safe_torch_load`.
    """
    filename = osp.expanduser(filename)
    problem = local_file_problem(filename)
    if problem is not None:
        raise problem
    return safe_torch_load(filename, map_location)


def url_cache_dir(url: str, model_dir: str = None) -> str:
    """Where ``url``'s download is cached: a folder of its own under torch
    hub's ``checkpoints`` (or ``model_dir``), named by a hash of the URL."""
    root = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    return osp.join(root, hashlib.sha256(url.encode()).hexdigest()[:16])


def _single_member_zip(path: str) -> bool:
    """torch hub's legacy format: a zip of one checkpoint file."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
    return len(entries) == 1 and not entries[0].is_dir()


def load_url(url: str,
             model_dir: str = None,
             map_location=None,
             progress: bool = True,
             check_hash: bool = False,
             file_name: str = None):
    """mmengine's ``load_url`` (torch hub's ``load_state_dict_from_url``:
    download once, verify the name's hash prefix with ``check_hash``,
    unpack a zip of one file), into :func:`url_cache_dir`, loading the
    cached file with :func:`safe_torch_load`'s checks every time, cache
    hits included.

    Raises:
        CheckpointDownloadError: the download failed (the URL is named).
        UnsafeCheckpointError, CorruptCheckpointError: as
            :func:`safe_torch_load`; the message names the cached copy.
    """
    directory = url_cache_dir(url, model_dir)
    cached = osp.join(directory, file_name or osp.basename(urlparse(url).path))
    if not osp.exists(cached):
        os.makedirs(directory, exist_ok=True)
        match = torch.hub.HASH_REGEX.search(osp.basename(cached))
        try:
            torch.hub.download_url_to_file(
                url, cached, match[1] if check_hash and match else None,
                progress=progress)
        except (OSError, RuntimeError) as err:  # RuntimeError: bad hash
            raise CheckpointDownloadError(
                f'could not download checkpoint {url!r}: {err}') from err
    name = f'{url!r} (cached as {cached!r})'
    if _single_member_zip(cached):
        with _refusing_unsafe_or_corrupt(name, cached):
            _refuse_absurd_sizes(cached)
        with zipfile.ZipFile(cached) as archive:
            # extract() keeps the member inside ``directory``.
            cached = archive.extract(archive.infolist()[0], directory)
        name = f'{url!r} (unpacked to {cached!r})'
    return _load(cached, name, map_location)


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
