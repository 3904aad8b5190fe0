"""Turn a distillation checkpoint into the student's plain mmseg weights.

A distiller's ``state_dict`` holds the student, the teacher and the
distiller's own modules side by side, each under a prefix: mmrazor's
``SingleTeacherDistill`` stores the student as ``architecture.*`` (teacher
``teacher.*``, losses and connectors ``distiller.*``), gdkd_seg's distiller as
``student.*``. Stripping the student's prefix gives weights that load into the
model built from the student's own mmseg config.
"""
from collections import OrderedDict
from typing import Dict, Sequence

from torch import Tensor

#: Student prefixes: mmrazor's ``SingleTeacherDistill``, gdkd_seg's distiller.
STUDENT_PREFIXES = ('architecture.', 'student.')


def extract_student_state_dict(
    state_dict: Dict[str, Tensor],
    prefixes: Sequence[str] = STUDENT_PREFIXES,
) -> 'OrderedDict[str, Tensor]':
    """Return the student's weights with its prefix stripped.

    Args:
        state_dict (dict[str, Tensor]): a distiller's ``state_dict`` (the
            ``'state_dict'`` entry of an mmengine checkpoint).
        prefixes (Sequence[str]): candidate student prefixes, each ending in
            ``'.'``. Exactly one must occur in ``state_dict``.

    Returns:
        OrderedDict[str, Tensor]: the student's entries, in their original
        order, keyed as in the student model's own ``state_dict``.

    Raises:
        ValueError: no key starts with any of ``prefixes`` (e.g. the file is
            already a plain model checkpoint), or several of them occur, so
            the student is ambiguous.
    """
    found = [p for p in prefixes if any(k.startswith(p) for k in state_dict)]
    if not found:
        top_level = sorted({k.split('.', 1)[0] + '.' for k in state_dict})
        raise ValueError(
            f'no student weights: no key starts with any of {list(prefixes)}'
            f'; the top-level prefixes are {top_level}. Is this a '
            'distillation checkpoint?')
    if len(found) > 1:
        raise ValueError(f'ambiguous student: keys start with each of {found}'
                         '; pass the student prefix explicitly')
    prefix = found[0]
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                       if k.startswith(prefix))
