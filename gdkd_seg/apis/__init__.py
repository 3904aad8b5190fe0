from .config import (add_launch_args, check_total_batch, load_config,
                     student_config, teacher_config)
from .inference import init_student, load_student_state
from .scalars import RunScalars, best_metric, read_scalars

__all__ = [
    'RunScalars', 'add_launch_args', 'best_metric', 'check_total_batch',
    'init_student', 'load_config', 'load_student_state', 'read_scalars',
    'student_config', 'teacher_config'
]
