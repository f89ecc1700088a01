"""`apex-ros launch GRAPH name:=value ...`: start a graph from apex_ros.ros.graph where launch_ros
is absent, with the argv `ros2 launch` would use.

Each node runs in its own process group and gets SIGTERM if the launcher dies (Linux
PR_SET_PDEATHSIG), so no node outlives it. SIGINT/SIGTERM to the launcher are forwarded to
every node. When any node exits, the others are stopped: the launch ends with 0 only if that
node is the one whose exit ends the launch (the trainer) and it succeeded.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..errors import ApexError
from ..resources import PACKAGE, share_dir
from .graph import GRAPHS, ros_argv

STOP_GRACE = 10.0  # seconds between SIGINT, SIGTERM and SIGKILL when stopping a node


def resolve_executable(name: str) -> str:
    candidates = [Path(p) / 'lib' / PACKAGE / name
                  for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    candidates.append(Path(sys.executable).parent / name)
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    raise ApexError(f'node executable {name!r} not found (looked in '
                    f'{", ".join(map(str, candidates))} and PATH); is apex_ros installed?')


def resolve_params_file(name: str) -> str:
    path = Path(name)
    if not path.is_absolute():
        path = path if path.is_file() else share_dir() / 'config' / name
    if not path.is_file():
        raise ApexError(f'parameter file not found: {path}')
    return str(path.resolve())


def parse_launch_arguments(graph: str, items: list) -> dict:
    """['name:=value', ...] -> {name: value} for every argument of `graph` (defaults filled
    in); ApexError for an unknown, missing or mistyped argument."""
    if graph not in GRAPHS:
        raise ApexError(f'unknown graph {graph!r}; known graphs: {", ".join(sorted(GRAPHS))}')
    _, arguments = GRAPHS[graph]
    declared = {a.name: a for a in arguments}
    values = {a.name: a.default for a in arguments}
    for item in items:
        name, sep, value = item.partition(':=')
        if not sep:
            raise ApexError(f'launch argument {item!r}: write name:=value')
        if name not in values:
            raise ApexError(f'unknown launch argument {name!r} for {graph}; known: '
                            f'{", ".join(values)}')
        values[name] = declared[name].check(value if value != '' else "''")
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise ApexError(f'{graph} needs launch argument(s) {", ".join(missing)} (name:=value)')
    return values


def graph_argvs(graph: str, values: dict) -> list:
    """[(NodeSpec, argv)] for every node of the graph."""
    make, _ = GRAPHS[graph]
    return [(spec, ros_argv(spec, resolve_executable(spec.executable), resolve_params_file))
            for spec in make(values)]


def _die_with_parent():
    """In the child, before exec: SIGTERM when the launcher process dies."""
    libc = ctypes.CDLL('libc.so.6', use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Launcher:
    def __init__(self, nodes, out=sys.stdout):
        self.nodes = nodes
        self.out = out
        self.procs = []
        self._lock = threading.Lock()
        self._signal = None

    def log(self, text):
        with self._lock:
            self.out.write(f'[launch] {text}\n')
            self.out.flush()

    def _pump(self, name, stream):
        for line in stream:
            with self._lock:
                self.out.write(f'[{name}] {line}')
                self.out.flush()

    def start(self):
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        for spec, argv in self.nodes:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True, env=env,
                                    preexec_fn=_die_with_parent)
            self.procs.append((spec, proc))
            self.log(f'started {spec.name} (pid {proc.pid}): {" ".join(argv)}')
        for spec, proc in self.procs:  # readers start after the forks (preexec_fn + threads)
            threading.Thread(target=self._pump, args=(spec.name, proc.stdout),
                             daemon=True).start()

    def stop(self):
        """SIGINT every running node's process group, then SIGTERM, then SIGKILL."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            running = [(s, p) for s, p in self.procs if p.poll() is None]
            if not running:
                return
            for spec, proc in running:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + STOP_GRACE
            while time.monotonic() < deadline and any(p.poll() is None for _, p in running):
                time.sleep(0.05)

    def _on_signal(self, signum, frame):
        self._signal = signum

    def run(self) -> int:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while True:
                if self._signal is not None:
                    self.log(f'received {signal.Signals(self._signal).name}; stopping all nodes')
                    self.stop()
                    return 128 + self._signal
                for spec, proc in self.procs:
                    code = proc.poll()
                    if code is None:
                        continue
                    ok = spec.ends_launch and code == 0
                    self.log(f'{spec.name} exited with status {code}; stopping the others')
                    self.stop()
                    return 0 if ok else (code if code > 0 else 1)
                time.sleep(0.05)
        finally:
            self.stop()
            for s, handler in old.items():
                signal.signal(s, handler)
