from .config import (add_launch_args, check_total_batch, load_config,
                     student_config)
from .inference import init_student, load_student_state

__all__ = [
    'add_launch_args', 'check_total_batch', 'init_student', 'load_config',
    'load_student_state', 'student_config'
]
