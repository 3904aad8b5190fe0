"""Student extraction from distillation checkpoints (mmrazor's and ours).

An end-to-end check on a checkpoint saved by mmrazor's Runner is in
test_mmrazor_interop.py.
"""
import pytest
import torch

from gdkd_seg.export import extract_student_state_dict


def _distiller_state(student_prefix):
    return {
        f'{student_prefix}backbone.conv1.weight': torch.ones(2),
        'teacher.backbone.conv1.weight': torch.zeros(3),
        f'{student_prefix}decode_head.conv_seg.bias': torch.full((4, ), 2.),
        'distiller.connectors.0.weight': torch.zeros(1),
    }


@pytest.mark.parametrize('prefix', ['architecture.', 'student.'])
def test_student_weights_come_back_unprefixed_in_order(prefix):
    weights = extract_student_state_dict(_distiller_state(prefix))
    assert list(weights) == [
        'backbone.conv1.weight', 'decode_head.conv_seg.bias'
    ]
    torch.testing.assert_close(weights['decode_head.conv_seg.bias'],
                               torch.full((4, ), 2.))


def test_plain_checkpoint_is_refused_with_its_prefixes_named():
    with pytest.raises(ValueError, match=r"no student weights.*'backbone\.'"):
        extract_student_state_dict({'backbone.conv1.weight': torch.ones(1)})


def test_two_candidate_students_are_ambiguous():
    state = {
        **_distiller_state('architecture.'),
        **_distiller_state('student.')
    }
    with pytest.raises(ValueError, match='ambiguous'):
        extract_student_state_dict(state)
    only = extract_student_state_dict(state, prefixes=('student.', ))
    assert set(only) == {'backbone.conv1.weight', 'decode_head.conv_seg.bias'}
