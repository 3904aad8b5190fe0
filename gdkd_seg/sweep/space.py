"""What a sweep varies: ``--grid``/``--range`` specs checked against configs.

A key is a dotted config path as in ``--cfg-options``
(``model.distill_losses.decode_head.k``, ``param_scheduler.0.end``); a ``*``
component stands for every child at that level that has the rest of the path,
so ``model.distill_losses.*.k`` sets ``k`` of every distilled head (decode
and auxiliary) at once. A distiller's ``student``/``teacher`` given as a
config path is read from that config. Everything here runs before anything
trains, so bad input fails with a message that names it: a value of a
distillation loss or of the optimizer is checked by building that part of
the config with it (one value at a time; a point's combination of values
is checked when its run builds the model).
"""
import ast
import copy
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import OPTIMIZERS
from mmseg.registry import MODELS

from ..distillers.base import resolve_model_cfg

Scalar = Union[int, float, str, bool, None]
Path = Tuple[Union[str, int], ...]
_BARE_WORD = re.compile(r'[A-Za-z_][\w\-./]*')


class SweepSpecError(ValueError):
    """A sweep specification that cannot run (raised before training)."""


class BareWord(str):
    """An unquoted word on the command line (``adaptive``): a string, unless
    the config holds a number there, where it is a typo."""


@dataclass(frozen=True)
class Param:
    """One swept key.

    Exactly one of ``choices`` (grid values, or TPE categories) and
    ``low``/``high`` (a TPE range) is set.
    """
    key: str
    choices: Optional[Tuple[Scalar, ...]] = None
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False

    @property
    def is_range(self) -> bool:
        return self.choices is None


def parse_grid(spec: str) -> Param:
    """``KEY=V1,V2,...`` (commas inside brackets or quotes do not split)."""
    key, text = _split_spec(spec, '--grid')
    return Param(key, _parse_choices(key, _split_values(text), '--grid'))


def parse_range(spec: str) -> Param:
    """``KEY=LOW:HIGH[:log]`` (a number range) or ``KEY=C1|C2|...``."""
    key, text = _split_spec(spec, '--range')
    if '|' in text or ':' not in text:
        return Param(key, _parse_choices(key, text.split('|'), '--range'))
    parts = text.split(':')
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != 'log'):
        raise SweepSpecError(
            f'--range {spec!r}: write KEY=LOW:HIGH or KEY=LOW:HIGH:log')
    low, high = (_parse_number(key, p) for p in parts[:2])
    log = len(parts) == 3
    if not low < high:
        raise SweepSpecError(
            f'--range {key}: LOW must be below HIGH, got {low} and {high}')
    if log and low <= 0:
        raise SweepSpecError(
            f'--range {key}: a log range needs LOW > 0, got {low}')
    return Param(key, low=low, high=high, log=log)


def _split_spec(spec: str, flag: str) -> Tuple[str, str]:
    key, sep, text = spec.partition('=')
    key = key.strip()
    if not sep or not key:
        raise SweepSpecError(f'{flag} {spec!r}: write KEY=VALUES')
    if not text.strip():
        raise SweepSpecError(f'{flag} {key}: the grid is empty (no values)')
    return key, text


def _split_values(text: str) -> List[str]:
    """Split at commas outside brackets and quotes."""
    values, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in '\'"':
            quote = char
        elif char in '([{':
            depth += 1
        elif char in ')]}':
            depth -= 1
        elif char == ',' and depth == 0:
            values.append(text[start:i])
            start = i + 1
    return values + [text[start:]]


def _parse_choices(key: str, texts: Sequence[str],
                   flag: str) -> Tuple[Scalar, ...]:
    values = tuple(parse_value(key, t, flag) for t in texts)
    for i, value in enumerate(values):
        if _same_kind(value) in map(_same_kind, values[:i]):
            raise SweepSpecError(f'{flag} {key}: {value!r} is listed twice')
    return values


def _same_kind(value: Scalar) -> Tuple[type, Scalar]:
    """A value and its kind, a bare word being a string: ``adaptive`` and
    ``'adaptive'`` are one value, ``1``, ``1.0`` and ``True`` three."""
    return (str if isinstance(value, str) else type(value)), value


def parse_value(key: str, text: str, flag: str = '--grid') -> Scalar:
    """A number, ``True``/``False``/``None``, a quoted string or a bare word
    (``adaptive``, kept as a string)."""
    text = text.strip()
    if not text:
        raise SweepSpecError(f'{flag} {key}: an empty value in the list')
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if not _BARE_WORD.fullmatch(text):
            raise SweepSpecError(
                f'{flag} {key}: {text!r} does not parse as a value (a '
                'number, True/False/None, a quoted string or a bare word)'
            ) from None
        return BareWord(text)
    if not isinstance(value, (int, float, str, bool, type(None))):
        raise SweepSpecError(
            f'{flag} {key}: {text!r} is a {type(value).__name__}; swept '
            'values must be numbers, strings, booleans or None')
    if isinstance(value, float) and not math.isfinite(value):
        raise SweepSpecError(
            f'{flag} {key}: {text!r} is {value}; swept numbers must be '
            'finite')
    return value


def _parse_number(key: str, text: str) -> Union[int, float]:
    value = parse_value(key, text, '--range')
    if not _is_number(value):
        raise SweepSpecError(
            f'--range {key}: {text.strip()!r} is not a number')
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- keys inside a config ---------------------------------------------------


def config_paths(cfg: Config, key: str) -> List[Path]:
    """The concrete paths a key names in ``cfg``.

    Raises:
        KeyError: the key names nothing in ``cfg``; the message says where
            the path stops.
    """
    found: List[Path] = []
    misses: List[str] = []
    _walk(
        cfg._cfg_dict if isinstance(cfg, Config) else cfg, key.split('.'), (),
        found, misses)
    if not found:
        raise KeyError(f'{key!r} is not in the config: ' + misses[0])
    return found


def _walk(node, parts: List[str], path: Path, found: List[Path],
          misses: List[str]) -> None:
    if not parts:
        found.append(path)
        return
    node = _resolved(node, path)
    head, rest = parts[0], parts[1:]
    where = '.'.join(map(str, path)) or 'the top level'
    if isinstance(node, dict):
        children = list(node) if head == '*' else [head]
        for name in children:
            if name in node:
                _walk(node[name], rest, path + (name, ), found, misses)
            else:
                shown = ', '.join(map(str, node)) or 'nothing'
                misses.append(f'{where} has no {name!r} (it has: {shown})')
    elif isinstance(node, (list, tuple)):
        if head == '*':
            indices = range(len(node))
        elif head.isdigit() and int(head) < len(node):
            indices = [int(head)]
        else:
            misses.append(f'{where} is a list of {len(node)}; {head!r} is '
                          'not an index in it')
            indices = []
        for index in indices:
            _walk(node[index], rest, path + (index, ), found, misses)
    else:
        misses.append(f'{where} is {node!r}, which has no {head!r}')


def _resolved(node, path: Path):
    """A distiller's student/teacher config path as the model it names."""
    if (isinstance(node, str) and len(path) == 2 and path[0] == 'model'
            and path[1] in ('student', 'teacher')):
        return resolve_model_cfg(node, path[1])
    return node


def get_value(cfg: Config, path: Path) -> Any:
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for depth, name in enumerate(path):
        node = _resolved(node, path[:depth])[name]
    return node


def set_value(cfg: Config, path: Path, value: Any) -> None:
    """Set ``path`` in ``cfg``, turning a student/teacher config path on the
    way into its model dict."""
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for depth, name in enumerate(path[:-1]):
        child = node[name]
        resolved = _resolved(child, path[:depth + 1])
        if resolved is not child:
            resolved = ConfigDict(resolved)
            node[name] = resolved
        node = resolved
    node[path[-1]] = value


# Config parts that build cheaply from their config alone, so a swept value
# is checked by the component itself: (path prefix, build function).
_BUILDABLE = (
    (('model', 'distill_losses', None), lambda part: MODELS.build(part)),
    (('optim_wrapper', 'optimizer'), lambda part: OPTIMIZERS.build(
        dict(part, params=[torch.nn.Parameter(torch.zeros(1))]))),
)


def check_value(cfg: Config, key: str, paths: Sequence[Path],
                value: Scalar) -> None:
    """Refuse a value that cannot run, before anything trains.

    A bare word where the config holds a number is a typo, not a value (a
    quoted string, ``"'adaptive'"``, is taken as meant). A value inside a
    distillation loss or the optimizer is set in a copy of that part of the
    config, which is then built: the loss's (or optimizer's) own checks
    name what is wrong (``w2=-1``, ``k=0``, ``lr=-0.1``).
    """
    _check_bare_word(cfg, key, paths, value)
    for path in paths:
        for prefix, build in _BUILDABLE:
            if len(path) <= len(prefix) or any(
                    p is not None and p != q for p, q in zip(prefix, path)):
                continue
            part = copy.deepcopy(get_value(cfg, path[:len(prefix)]))
            set_value(part, path[len(prefix):], value)
            try:
                build(part)
            except (TypeError, ValueError, KeyError, AssertionError) as err:
                raise SweepSpecError(
                    f'{key}={value!r}: {".".join(map(str, path))} is '
                    f'refused by {part.get("type")}: {err}') from None


def _check_bare_word(cfg: Config, key: str, paths: Sequence[Path],
                     value: Scalar) -> None:
    if not isinstance(value, BareWord):
        return
    for path in paths:
        current = get_value(cfg, path)
        if _is_number(current):
            raise SweepSpecError(
                f'{key}: {str(value)!r} does not parse as a number, and '
                f'{".".join(map(str, path))} is {current!r} in the config '
                f'(to set a string, quote it: "\'{value}\'")')


def apply_point(cfg: Config, point: Dict[str, Scalar]) -> None:
    """Set every key of a point (all the paths each key names)."""
    for key, value in point.items():
        for path in config_paths(cfg, key):
            set_value(cfg, path, value)
