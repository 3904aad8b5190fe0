"""Without a GPU, run Triton kernels in Triton's CPU interpreter.

``TRITON_INTERPRET`` is read when a kernel is decorated, so it must be set
before ``gdkd_seg`` is imported; conftest.py is loaded first.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')
