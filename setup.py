import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name):
    """Requirement lines of requirements/<name>.txt, comments stripped."""
    lines = []
    with open(osp.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                lines.append(line)
    return lines


def read_version():
    with open(osp.join(HERE, 'gdkd_seg', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


setup(
    name='gdkd_seg',
    version=read_version(),
    description='GDKD knowledge distillation for OpenMMLab semantic '
    'segmentation',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'configs', 'tools')),
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        # mmcv is not declared by default: full mmcv (compiled ops) and
        # mmcv-lite both provide the `mmcv` package and must not be installed
        # together. Tested: Python 3.11, torch 2.14.1 (docs/get_started.md, Install).
        'lite': read_requirements('mmcv_lite.txt'),
        'full': ['mmcv>=2.0.0rc4,<2.2.0'],
        'cityscapes': ['cityscapesscripts'],
        'cls': ['mmpretrain==1.2.0', 'torchvision'],
        'deploy': read_requirements('deploy.txt'),
        'mmrazor': read_requirements('mmrazor.txt'),
        'sweep': read_requirements('sweep.txt'),
        'tests': read_requirements('tests.txt'),
    },
    license='Apache License 2.0',
    zip_safe=False)
