"""Load mmengine checkpoints with ``torch.load(weights_only=True)``.

torch >= 2.6 refuses pickled globals that are not allow-listed, and mmengine
checkpoints carry a few: numpy arrays/scalars and ``HistoryBuffer`` objects in
the message hub. We allow-list exactly those instead of switching the
protection off. A ``HistoryBuffer`` pickles its statistics methods through
``builtins.getattr(HistoryBuffer, 'min')``; rather than allowing ``getattr``
on anything, that name resolves to a function that only returns public
methods of HistoryBuffer.

mmengine's loader for local files is also replaced by one that loads with
``weights_only=True`` on every torch version and turns failures into errors
that name the file and the problem (missing, corrupt, unsafe).
"""
import os.path as osp
import pickle

import numpy as np
import torch


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


def _numpy_globals():
    multiarray = getattr(np, '_core', None) or np.core
    names = [multiarray.multiarray._reconstruct, multiarray.multiarray.scalar,
             np.ndarray, np.dtype]
    dtype_classes = getattr(np, 'dtypes', None)
    if dtype_classes is not None:
        names += [getattr(dtype_classes, n) for n in dir(dtype_classes)
                  if n.endswith('DType')]
    return names


def load_from_local(filename: str, map_location=None):
    """``torch.load`` a local checkpoint safely, with errors that say why.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: it holds pickled code or objects outside the
            allow-list (nothing in it is executed).
        CorruptCheckpointError: it is truncated or not a torch checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f'checkpoint {filename!r} contains pickled objects that are not '
            'allow-listed, so it was not loaded (loading it could run code). '
            f'If you trust the file, re-save its state_dict. Detail: {err}'
        ) from err
    except (RuntimeError, EOFError, ValueError) as err:
        raise CorruptCheckpointError(
            f'checkpoint {filename!r} is corrupt, truncated or not a PyTorch '
            f'checkpoint: {err}') from err


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list mmengine's globals and use the safe local loader."""
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader

    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals([HistoryBuffer, *_numpy_globals()])
        add_safe_globals([(_history_buffer_getattr, 'builtins.getattr'),
                          (_history_buffer_getattr, '__builtin__.getattr')])
    CheckpointLoader.register_scheme(
        prefixes='', force=True)(load_from_local)
