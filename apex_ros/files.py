"""Atomic file writes: a temp file in the target's folder, then a rename, so a reader (or a
resumed run) never sees half a file; block_writes lets a stopping process finish the one in
progress."""
import os
import tempfile
import threading
from pathlib import Path

_writing = threading.Lock()   # held by the atomic write in progress (see block_writes)


def _umask() -> int:
    try:  # Linux >= 4.7 reports it; os.umask would have to set it to read it
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('Umask:'):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def atomic_write_bytes(path, data: bytes):
    """Write `data` to `path` so that readers see the old file or the new one, never a part:
    write a temp file in the same directory, fsync, rename over the target. The file gets
    the target's permissions if it exists, else those open() would give it (mkstemp's are
    0600: a bundle another user deploys must stay readable)."""
    path = Path(path)
    with _writing:
        _write_and_rename(path, data)


def _write_and_rename(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def block_writes(timeout: float) -> bool:
    """Wait (up to `timeout` s) for the atomic write in progress in any thread to finish,
    then let no other one start: for a process about to exit while worker threads still run
    (daemon threads die where they stand, a write's temp file with them). -> whether no
    write is in progress."""
    return _writing.acquire(timeout=timeout)


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode())
