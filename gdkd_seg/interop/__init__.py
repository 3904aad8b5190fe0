"""Glue for using gdkd_seg's losses from other OpenMMLab frameworks.

Nothing here is imported by ``import gdkd_seg``; a config names the module it
needs in ``custom_imports`` (e.g. ``gdkd_seg.interop.mmrazor``).
"""
