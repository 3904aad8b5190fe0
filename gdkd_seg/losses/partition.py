"""What a member of the loss family is: its groups and the weights of its KLs.

Every loss in this package is one partitioned KL divergence of the classes
split into groups ``U_0 .. U_{G-1}``, with a group weight ``w_group`` on the
KL of the group masses and one leaf weight ``w_g`` per group on the KL
within it; its equation is written in ``functional.partitioned_kl`` and in
``docs/method.md``.

A :class:`PartitionSpec` says how the groups are formed (a
:class:`GroupRule` and its cut points) and what the weights are. Each
registered loss declares one spec (the constructors below); the plain path
(``functional``), the fused torch path and the Triton kernels all read it,
and the parameters are checked here, once.

Groups by the teacher's ranking (``GroupRule.TEACHER_RANK``): the classes
sorted by the teacher's logit, descending, ties to the lowest class index,
are cut at ``cuts = (c_1 < c_2 < ... < c_m)``; group ``j`` holds ranks
``[c_j, c_{j+1})`` (``c_0 = 0``, ``c_{m+1} = C``), so ``m`` cuts make
``m + 1`` groups and a class of rank ``r`` is in group ``#{j : c_j <= r}``:

* ``cuts=()``: one group, classic KD;
* ``cuts=(k,)``: teacher top-k / rest, GDKD;
* ``cuts=(1, k)``: top-1 / top-2..k / rest, GDKD3;
* ``cuts=(1, 4, 10)``: deeper cuts, one config line away.

A cut may equal C (its last group is then empty and contributes nothing).
``adaptive`` replaces a single cut by a per-row one: the smallest ``k``
whose teacher top-k holds a share ``mass`` of the teacher's probability
(``functional.adaptive_k``).

Groups by the label (``GroupRule.LABEL``): ``{ground-truth class}`` (group
0) vs the rest (group 1), as DKD.

``functional.group_index`` turns a spec into each class's group; the fused
torch path and the Triton kernels implement the same rule. A new way of
forming groups is a :class:`GroupRule` member and its checks here, its
group index in ``functional.group_index``, its masks in
``fused_torch._group_masks`` (float masks, or ``group_index``'s) and, on CUDA,
its group ids in the Triton kernels (``fused_triton``; ``limit_error``
sends what they lack to the torch path).
"""
import enum
import math
import numbers
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

__all__ = [
    'GroupRule', 'AdaptiveCut', 'PartitionSpec', 'KL_TYPES',
    'TEMPERATURE_RANGE', 'check_finite', 'check_temperature', 'check_weight',
    'kd', 'dkd', 'gdkd', 'gdkd3'
]

# The direction of the within-group KLs: 'forward' KL(q^g || p^g) (the
# teacher's distribution first), 'reverse' KL(p^g || q^g), 'both' their mean
# (the official ``kl_div`` helper's ``kl_type``).
KL_TYPES = ('forward', 'reverse', 'both')

# The temperatures whose forward-KL loss and gradient float32 computes to a
# relative 1e-4 on both paths (tests/test_loss_inputs.py holds both ends to
# a float64 reference; the reverse KL's gradient is within 1e-3 at 1e-4,
# where its log-ratios reach 1e4). Far above, the T^2-scaled KL is a difference of nearly
# equal numbers, lost to rounding up to a zero loss over a NaN gradient;
# far below, the fused path's group masses turn NaN.
TEMPERATURE_RANGE = (1e-4, 100.0)


class GroupRule(enum.IntEnum):
    """How a row's classes are split into groups (an int for the kernels)."""
    TEACHER_RANK = 0
    LABEL = 1


@dataclass(frozen=True)
class AdaptiveCut:
    """A per-row cut: the smallest k with teacher top-k mass >= ``mass``.

    Attributes:
        mass (float): the share ``tau`` in ``[0, 1]``.
        max_k (int, optional): cap on k (None: the number of classes).
    """
    mass: float
    max_k: Optional[int]

    def __post_init__(self):
        check_finite('adaptive mass', self.mass)
        if not 0.0 <= self.mass <= 1.0:
            raise ValueError(f'adaptive mass must be in [0, 1], got '
                             f'{self.mass}')
        if self.max_k is not None and not _is_int(self.max_k, 1):
            raise ValueError(f'max_k must be an int >= 1, got {self.max_k!r}')


@dataclass(frozen=True)
class PartitionSpec:
    """The groups of a partitioned KL and the weights of its terms.

    Attributes:
        rule (GroupRule): teacher ranking (cut points) or label.
        cuts (tuple[int]): strictly increasing cut points >= 1
            (``TEACHER_RANK`` only; empty with ``adaptive``).
        group_weight (float): ``w_group``, the weight of the KL of the
            group masses.
        leaf_weights (tuple[float]): ``w_g``, one weight per group's
            within-group KL.
        temperature (float): T in :data:`TEMPERATURE_RANGE`.
        adaptive (AdaptiveCut, optional): one per-row cut instead of
            ``cuts``.
        kl_type (str): direction of the within-group KLs, one of
            :data:`KL_TYPES`; the group KL is always ``KL(Q || P)``.
    """
    rule: GroupRule
    cuts: Tuple[int, ...]
    group_weight: float
    leaf_weights: Tuple[float, ...]
    temperature: float
    adaptive: Optional[AdaptiveCut] = None
    kl_type: str = 'forward'

    def __post_init__(self):
        if self.kl_type not in KL_TYPES:
            raise ValueError(f'kl_type must be one of {KL_TYPES}, got '
                             f'{self.kl_type!r}')
        object.__setattr__(self, 'rule', GroupRule(self.rule))
        object.__setattr__(self, 'cuts', tuple(self.cuts))
        object.__setattr__(self, 'leaf_weights', tuple(self.leaf_weights))
        check_temperature(self.temperature)
        check_weight('the group weight (w0, alpha)', self.group_weight)
        for g, w in enumerate(self.leaf_weights):
            check_weight(f'the leaf weight of group {g}', w)
        object.__setattr__(self, 'leaf_weights',
                           tuple(float(w) for w in self.leaf_weights))
        object.__setattr__(self, 'temperature', float(self.temperature))
        object.__setattr__(self, 'group_weight', float(self.group_weight))
        if self.rule == GroupRule.LABEL and (self.cuts or self.adaptive):
            raise ValueError('a label partition takes no cuts')
        if self.adaptive is not None and self.cuts:
            raise ValueError('an adaptive cut replaces `cuts`: give one or '
                             f'the other, got cuts={self.cuts}')
        if not all(_is_int(c, 1) for c in self.cuts) or any(
                a >= b for a, b in zip(self.cuts, self.cuts[1:])):
            raise ValueError('cuts (k) must be strictly increasing ints '
                             f'>= 1, got {self.cuts}')
        if len(self.leaf_weights) != self.num_groups:
            raise ValueError(
                f'{self.num_groups} groups need {self.num_groups} leaf '
                f'weights, got {len(self.leaf_weights)}: {self.leaf_weights}')

    @property
    def num_groups(self) -> int:
        """G, the number of groups."""
        if self.rule == GroupRule.LABEL or self.adaptive is not None:
            return 2
        return len(self.cuts) + 1

    @property
    def needs_labels(self) -> bool:
        """Whether the groups depend on the ground truth."""
        return self.rule == GroupRule.LABEL

    def depth(self, num_classes: int) -> int:
        """The deepest teacher rank that decides a group among
        ``num_classes`` classes (0: none)."""
        if self.adaptive is not None:
            return self.adaptive.max_k or num_classes
        return self.cuts[-1] if self.cuts else 0

    def check_num_classes(self, num_classes: int) -> None:
        """Raise ValueError if the spec does not fit ``num_classes``."""
        if num_classes < 1:
            raise ValueError(f'logits need at least one class, got '
                             f'{num_classes}')
        deepest = self.depth(num_classes)
        if deepest > num_classes:
            what = 'max_k' if self.adaptive is not None else 'k'
            raise ValueError(f'{what} must be in [1, {num_classes}] (the '
                             f'number of classes), got {deepest}')


def check_temperature(value) -> None:
    """Raise ValueError unless ``value`` is a finite number in
    :data:`TEMPERATURE_RANGE`."""
    check_finite('temperature', value)
    low, high = TEMPERATURE_RANGE
    if value <= 0:
        raise ValueError(f'temperature must be > 0, got {value}')
    if not low <= value <= high:
        raise ValueError(
            f'temperature must be in [{low:g}, {high:g}] (where float32 '
            f'computes the loss to its rounding), got {value:g}')


def check_finite(name: str, value) -> None:
    """Raise ValueError unless ``value`` is a finite real number (not a
    string such as ``'2'``, nor a bool)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) \
            or not math.isfinite(value):
        raise ValueError(f'{name} must be a finite number, got {value!r}')


def _is_int(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) \
        and value >= low


def check_weight(name: str, value) -> None:
    """Raise ValueError unless ``value`` is a finite number >= 0."""
    check_finite(name, value)
    if value < 0:
        raise ValueError(f'{name} must be >= 0, got {value}')


# The family. Each constructor is the one definition of its loss; the
# registered modules (distill_losses.py) hold the defaults.


def kd(*, temperature: float, kl_type: str = 'forward') -> PartitionSpec:
    """Classic KD: one group, ``T^2 KL(q || p)``."""
    return PartitionSpec(GroupRule.TEACHER_RANK, (), 0.0, (1.0, ),
                         temperature, kl_type=kl_type)


def dkd(*, alpha: float, beta: float, temperature: float,
        kl_type: str = 'forward') -> PartitionSpec:
    """DKD: ``{ground truth} / rest``; ``alpha`` on the group KL (TCKD),
    ``beta`` on the rest's leaf KL (NCKD)."""
    return PartitionSpec(GroupRule.LABEL, (), alpha, (0.0, beta),
                         temperature, kl_type=kl_type)


def gdkd(*,
         k: Union[int, Sequence[int], AdaptiveCut],
         w0: float,
         w1: float,
         w2: float,
         temperature: float,
         leaf_weights: Optional[Sequence[float]] = None,
         kl_type: str = 'forward') -> PartitionSpec:
    """GDKD with cut points ``k`` (an int, a tuple of cuts or an adaptive
    cut); ``w0`` on the group KL, ``w1`` on every top group's leaf KL and
    ``w2`` on the rest's, unless ``leaf_weights`` gives one per group."""
    if isinstance(k, AdaptiveCut):
        cuts, adaptive = (), k
    else:
        cuts = tuple(k) if isinstance(k, (tuple, list)) else (k, )
        adaptive = None
        if not cuts:
            raise ValueError('GDKD needs at least one cut k, got ()')
    groups = 2 if adaptive is not None else len(cuts) + 1
    if leaf_weights is None:
        leaf_weights = (w1, ) * (groups - 1) + (w2, )
    return PartitionSpec(GroupRule.TEACHER_RANK, cuts, w0, leaf_weights,
                         temperature, adaptive, kl_type)


def gdkd3(*, k: int, w0: float, w1: float, w2: float, temperature: float,
          kl_type: str = 'forward') -> PartitionSpec:
    """GDKD3: top-1 / top-2..k / rest, i.e. :func:`gdkd` with cuts
    ``(1, k)`` (the top-1 leaf is one class: its KL is 0)."""
    if not _is_int(k, 2):
        raise ValueError(f'GDKD3 needs an int k >= 2 (top-1 and top-2..k), '
                         f'got {k!r}')
    return gdkd(k=(1, k), w0=w0, w1=w1, w2=w2, temperature=temperature,
                kl_type=kl_type)
