"""MuJoCo models by name: files under models/ or shipped inside an installed package."""
import importlib.util
import re
from pathlib import Path

import mujoco

from ..errors import ApexError
from ..resources import model_path

# model-file prefix -> (package, folder of its model files inside the package)
PACKAGE_ASSETS = {
    'gymnasium': ('gymnasium', 'envs/mujoco/assets'),
    'gymnasium_robotics': ('gymnasium_robotics', 'envs/assets'),
}


def resolve_model_file(model_file: str) -> Path:
    """'cartpole.xml' -> models/cartpole.xml; 'gymnasium:half_cheetah.xml' or
    'gymnasium_robotics:adroit_hand/adroit_door.xml' -> the file shipped inside that installed
    package (PACKAGE_ASSETS)."""
    prefix, sep, rest = model_file.partition(':')
    if sep and prefix in PACKAGE_ASSETS:
        package, folder = PACKAGE_ASSETS[prefix]
        spec = importlib.util.find_spec(package)
        if spec is None:
            raise ApexError(f'model {model_file}: the {package} package is not installed')
        path = Path(spec.origin).parent / folder / rest
    else:
        path = Path(model_file) if Path(model_file).is_absolute() else model_path(model_file)
    if not path.is_file():
        raise ApexError(f'model file not found: {path}')
    return path


def load_model(model_file: str) -> mujoco.MjModel:
    path = resolve_model_file(model_file)
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
