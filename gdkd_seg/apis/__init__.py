from .config import (add_launch_args, check_total_batch, load_config,
                     student_config)

__all__ = [
    'add_launch_args', 'check_total_batch', 'load_config', 'student_config'
]
