"""A one-line progress display on stderr: redrawn in place on a terminal, an occasional plain
line otherwise (CI logs), silent when disabled."""
import sys
import time


class Progress:
    def __init__(self, label: str, total: int, enabled: bool = True, stream=None):
        self.label, self.total, self.enabled = label, total, enabled
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, 'isatty', lambda: False)()
        self.start = time.perf_counter()
        self._last_plain = -1.0
        self.n = 0

    def update(self, n: int, status: str = ''):
        self.n = n
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        frac = n / self.total if self.total else 1.0
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = '#' * int(20 * frac) + '-' * (20 - int(20 * frac))
        line = (f'{self.label} [{bar}] {n}/{self.total} {elapsed:5.1f}s '
                f'eta {eta:5.1f}s {status}')
        if self.tty:
            self.stream.write('\r' + line[:150].ljust(150))
            self.stream.flush()
        elif elapsed - self._last_plain >= 10.0 or n == self.total:
            self._last_plain = elapsed
            self.stream.write(line + '\n')
            self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write('\n')
            self.stream.flush()
