"""MuJoCo models by name: files under models/ or shipped inside an installed package."""
import importlib.util
import re
from pathlib import Path

import mujoco

from ..errors import ApexError
from ..resources import model_path

# model-file prefix -> where that installed package keeps its MJCF assets
PACKAGE_ASSETS = {
    'gymnasium': ('envs', 'mujoco', 'assets'),
    'gymnasium_robotics': ('envs', 'assets'),
}


def resolve_model_file(model_file: str, directory: Path | None = None) -> Path:
    """'cartpole.xml' -> models/cartpole.xml (or `directory`/cartpole.xml when given: a task
    of another package keeps its model beside its module); 'gymnasium:half_cheetah.xml' and
    'gymnasium_robotics:fetch/pick_and_place.xml' -> the file shipped inside the installed
    gymnasium or gymnasium-robotics package; an absolute path as it is."""
    package, _, name = model_file.partition(':')
    if name and package in PACKAGE_ASSETS:
        spec = importlib.util.find_spec(package)
        if spec is None:
            raise ApexError(f'model {model_file}: the {package} package is not installed')
        path = Path(spec.origin).parent.joinpath(*PACKAGE_ASSETS[package], name)
    else:
        path = Path(model_file)
        if not path.is_absolute():
            path = directory / path if directory is not None else model_path(model_file)
    if not path.is_file():
        raise ApexError(f'model file not found: {path}')
    return path


def load_model(model_file: str, directory: Path | None = None) -> mujoco.MjModel:
    path = resolve_model_file(model_file, directory)
    text = path.read_text()
    # gymnasium's half_cheetah.xml uses the deprecated compiler attribute settotalmass; apply
    # it after compiling, as MuJoCo advises (gives identical masses and inertias, no warning).
    total = re.search(r'settotalmass="([^"]+)"', text)
    try:
        if total is None:
            return mujoco.MjModel.from_xml_path(str(path))
        spec = mujoco.MjSpec.from_string(re.sub(r'\s*settotalmass="[^"]+"', '', text))
        spec.modelfiledir = str(path.parent)
        model = spec.compile()
    except ValueError as e:
        raise ApexError(f'{path}: MuJoCo cannot load this model: {e}') from None
    mujoco.mj_setTotalmass(model, float(total.group(1)))
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model
