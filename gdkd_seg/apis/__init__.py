from .config import (add_launch_args, check_total_batch, load_config,
                     plain_student_config, student_config, teacher_config)
from .cpu_distributed import CPUDistributedDataParallel
from .distributed import destroy_process_group
from .inference import (as_config, inference_images, init_student,
                        init_teacher, load_student_state)
from .scalars import RunScalars, best_metric, read_scalars

__all__ = [
    'CPUDistributedDataParallel', 'RunScalars', 'add_launch_args',
    'as_config', 'best_metric', 'check_total_batch', 'destroy_process_group',
    'inference_images', 'init_student', 'init_teacher', 'load_config',
    'load_student_state', 'plain_student_config', 'read_scalars',
    'student_config', 'teacher_config'
]
