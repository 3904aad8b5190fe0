"""Run one of mmseg's own tools with gdkd_seg's compatibility layer.

    python tools/misc/mmseg_tool.py TOOL [tool args...]

TOOL is a script of the tools mmseg ships in its package (``mmseg/.mim/
tools``), by name or relative path: ``get_flops``, ``benchmark``,
``print_config``, ``confusion_matrix``, ``test``,
``analysis_tools/browse_dataset.py``, ... It runs as ``python TOOL.py
args...`` would (``mim run mmseg TOOL`` does the same), after ``import
gdkd_seg``, without which mmseg does not import with mmcv-lite. Give these
tools a plain config: ``tools/misc/student_config.py`` writes a distiller's.
"""
import glob
import importlib.util
import os.path as osp
import runpy
import sys


def mmseg_tools_dir() -> str:
    spec = importlib.util.find_spec('mmseg')
    if spec is None:
        raise ModuleNotFoundError('mmseg is not installed in this Python')
    return osp.join(osp.dirname(spec.origin), '.mim', 'tools')


def find_tool(name: str) -> str:
    """The path of mmseg's tool ``name`` (``get_flops`` or a relative path
    such as ``misc/browse_dataset.py``)."""
    root = mmseg_tools_dir()
    direct = osp.join(root, name if name.endswith('.py') else f'{name}.py')
    if osp.isfile(direct):
        return direct
    stem = osp.splitext(osp.basename(name))[0]
    found = sorted(
        glob.glob(osp.join(root, '**', f'{stem}.py'), recursive=True))
    if len(found) == 1:
        return found[0]
    names = sorted(
        osp.relpath(p, root)
        for p in glob.glob(osp.join(root, '**', '*.py'), recursive=True)
        if '__' not in p)
    if found:
        raise SystemExit(f'{name!r} is ambiguous: '
                         f'{[osp.relpath(p, root) for p in found]}')
    raise SystemExit(f'mmseg has no tool {name!r}; its tools: {names}')


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ('-h', '--help'):
        raise SystemExit(__doc__)
    path = find_tool(sys.argv[1])
    import gdkd_seg  # noqa: F401  (compat layer before mmseg imports)
    sys.argv = [path, *sys.argv[2:]]
    runpy.run_path(path, run_name='__main__')


if __name__ == '__main__':
    main()
