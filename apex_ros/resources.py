"""Where the package's data directories (models/, config/, launch/) live.

Three layouts are supported: a ROS install (ament index share directory), a pip install
(data_files under sys.prefix/share/apex_ros) and the source tree (editable install, tests).
"""
import os
import sys
from pathlib import Path

from .errors import ApexError

PACKAGE = 'apex_ros'
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """The directory that holds models/, config/ and launch/ for this installation."""
    candidates = []
    if (_SOURCE_ROOT / 'package.xml').is_file():
        candidates.append(_SOURCE_ROOT)  # source tree / editable install wins: it is what runs
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / PACKAGE)
    candidates.append(Path(sys.prefix) / 'share' / PACKAGE)
    for c in candidates:
        if (c / 'config').is_dir():
            return c
    raise ApexError('cannot find the apex_ros share directory (models/, config/); looked in: '
                    + ', '.join(str(c) for c in candidates))


def model_path(name: str) -> Path:
    return share_dir() / 'models' / name


def config_path(name: str) -> Path:
    return share_dir() / 'config' / name
