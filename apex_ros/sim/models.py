"""MuJoCo models by name: files under models/ or shipped inside an installed package."""
import importlib.util
import re
from pathlib import Path

import mujoco

from ..errors import ApexError
from ..resources import model_path


def resolve_model_file(model_file: str, directory: Path | None = None) -> Path:
    """'cartpole.xml' -> models/cartpole.xml (or `directory`/cartpole.xml when given: a task
    of another package keeps its model beside its module); 'gymnasium:half_cheetah.xml' -> the
    file shipped inside the installed gymnasium package; an absolute path as it is."""
    if model_file.startswith('gymnasium:'):
        spec = importlib.util.find_spec('gymnasium')
        if spec is None:
            raise ApexError(f'model {model_file}: the gymnasium package is not installed')
        assets = Path(spec.origin).parent / 'envs' / 'mujoco' / 'assets'
        path = assets / model_file.split(':', 1)[1]
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
