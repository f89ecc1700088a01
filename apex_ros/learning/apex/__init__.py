"""APEX (Pinneri et al. ICLR 2021): the loop (loop.py), its rollout sources (sources.py),
checkpoint format (checkpoint.py), reports (report.py) and the `apex:` config section
(config.py). Import-light: ApexTrainer (torch) loads on first use."""
from .config import ABLATIONS, ApexConfig, apex_settings, apply_ablation, episode_seed


def __getattr__(name):
    if name == 'ApexTrainer':
        from .loop import ApexTrainer
        return ApexTrainer
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['ABLATIONS', 'ApexConfig', 'ApexTrainer', 'apex_settings', 'apply_ablation',
           'episode_seed']
