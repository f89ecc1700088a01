"""The policy executor's latency and command rate with the browser view attached vs without.

Wraps benchmarks/executor_latency.py (same halfcheetah bundle, same robot side, same
measurement: one-way state -> command over DDS at --rate, this checkout's executor). Three
conditions, each run once per repeat in a rotating order so drift of the shared machine falls
on all of them:
  without       the executor alone;
  view          `apex-ros view` in its own process, subscribed to /joint_states and the
                command topic, with a browser elsewhere (a robot's computer serves the page,
                the person looks from a laptop): no browser on this machine;
  view+browser  the same and a headless Debian chromium (playwright) on this machine showing
                the live page (rendered in software WebGL here: the worst case).
Noise is the spread (max - min) of the per-repeat figure without the view; a condition is
within noise when its median differs from the median without the view by no more than that.

    python benchmarks/view_overhead.py benchmarks/view_overhead.json --duration 10 --repeats 3
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import executor_latency as el  # noqa: E402 (sets the ROS domain before rclpy is imported)
import rclpy  # noqa: E402, I100

from apex_ros.cli.bench import environment, write_json  # noqa: E402

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                  '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync']


CONDITIONS = ('without', 'view', 'view+browser')


class AttachedView:
    """`apex-ros view` as a subprocess and, with `playwright`, a headless chromium tab on its
    page."""

    def __init__(self, playwright, log_dir):
        self.log = open(os.path.join(log_dir, 'view.log'), 'w+')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'apex_ros.cli', 'view', '--task', 'halfcheetah_run',
             '--port', '0'], stdout=self.log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.browser = None
        try:
            url = self._wait_url()
            if playwright is not None:
                self.browser = playwright.chromium.launch_persistent_context(
                    tempfile.mkdtemp(prefix='view-bench-chromium-'), executable_path=CHROMIUM,
                    headless=True, args=CHROMIUM_FLAGS, viewport={'width': 1400, 'height': 900})
                self.tab = self.browser.new_page()
                self.tab.goto(url)
                self.tab.get_by_text('Driving the simulation').wait_for(timeout=60_000)
        except BaseException:
            self.close()
            raise

    def states_shown(self) -> int | None:
        """How many states the page says were published (proof it was attached and fed)."""
        if self.browser is None:
            return None
        m = re.search(r'State: (\d+) published', self.tab.inner_text('body'))
        return int(m.group(1)) if m else 0

    def _wait_url(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.log.seek(0)
            m = re.search(r'view: (http://\S+)', self.log.read())
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f'the view did not start; see {self.log.name}')

    def cpu_seconds(self) -> float:
        return el.cpu_seconds(self.proc.pid)

    def close(self):
        if self.browser is not None:
            self.browser.close()
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def summary(runs) -> dict:
    """Median and spread (max - min) over the runs of p50, p99 and the command rate."""
    out = {}
    for q in ('p50', 'p99'):
        values = np.array([r['latency_ms'][q] for r in runs])
        out[f'latency_{q}_ms'] = {'median': float(np.median(values)),
                                  'spread': float(values.max() - values.min()),
                                  'runs': values.tolist()}
    rates = np.array([r['listener_command_rate_hz'] for r in runs])
    out['command_rate_hz'] = {'median': float(np.median(rates)),
                              'spread': float(rates.max() - rates.min()), 'runs': rates.tolist()}
    return out


def main(argv=None):
    from playwright.sync_api import sync_playwright
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--duration', type=float, default=10.0, help='measured seconds per run')
    ap.add_argument('--repeats', type=int, default=3, help='runs with and without the view')
    ap.add_argument('--warmup', type=float, default=1.0)
    ap.add_argument('--rate', type=float, default=500.0, help='state rate (Hz)')
    ap.add_argument('--trigger', default='state', choices=('state', 'timer'))
    ap.add_argument('--executor', default='events', choices=('single', 'events'))
    args = ap.parse_args(argv)
    args.bundle, args.stale = str(el.BUNDLE), 0.2  # what executor_latency.run_config reads
    if not os.path.exists(CHROMIUM):
        sys.exit(f'no chromium at {CHROMIUM}: apt-get install -y chromium')
    rclpy.init()
    env = environment()
    env.update(load_before=os.getloadavg(), cpu_model=el.cpu_model())
    runs = {c: [] for c in CONDITIONS}
    with tempfile.TemporaryDirectory(prefix='view-overhead-') as tmp, \
            sync_playwright() as playwright:
        driver = el.Robot(args.rate)
        # the command rate as a lean separate subscriber counts it (as executor_latency.py)
        times_path = os.path.join(tmp, 'listener.json')
        topic = el.TOPIC
        listener = subprocess.Popen([sys.executable, '-c', el.LISTENER, topic, times_path])
        try:
            if not driver.spin_for(30, until=lambda: driver.node.count_subscribers(topic) >= 2):
                raise RuntimeError('the listener did not come up')
            for repeat in range(args.repeats):
                order = CONDITIONS[repeat % 3:] + CONDITIONS[:repeat % 3]
                for condition in order:
                    view = (None if condition == 'without' else AttachedView(
                        playwright if condition == 'view+browser' else None, tmp))
                    try:
                        cpu0 = view.cpu_seconds() if view else 0.0
                        result = el.run_config(driver, ('current', str(el.ROOT), {}),
                                               args.trigger, False, args, tmp)
                        if view:
                            result['view_cpu_percent'] = (
                                100 * (view.cpu_seconds() - cpu0) / result['seconds'])
                            result['view_states_shown'] = view.states_shown()
                    finally:
                        if view:
                            view.close()
                    runs[condition].append(result)
                    lat = result['latency_ms']
                    print(f'{condition:12s} p50 {lat["p50"]:.3f} ms  p99 {lat["p99"]:.3f} ms  '
                          f'commands {result["commands_received"] / result["seconds"]:.1f} Hz '
                          f'(driver)  machine CPU '
                          f'{result["machine_cpu_busy_percent"]:.0f} %'
                          + (f'  view CPU {result["view_cpu_percent"]:.0f} %' if view else '')
                          + (f', page shows {result["view_states_shown"]} states'
                             if view and view.browser else ''),
                          flush=True)
        finally:
            listener.terminate()
            listener.wait(10)
            driver.close()
            rclpy.try_shutdown()
        with open(times_path) as f:
            times = np.array(json.load(f))
    for result in (r for condition_runs in runs.values() for r in condition_runs):
        start, end = result.pop('window')
        result['listener_command_rate_hz'] = int(np.sum((times >= start) & (times < end))) / (
            end - start)
    summaries = {c: summary(runs[c]) for c in CONDITIONS}
    without = summaries['without']
    verdict = {}
    for condition in CONDITIONS[1:]:
        verdict[condition] = {}
        for key in ('latency_p50_ms', 'latency_p99_ms', 'command_rate_hz'):
            median = summaries[condition][key]['median']
            delta = median - without[key]['median']
            within = abs(delta) <= without[key]['spread']
            verdict[condition][key] = {'difference': delta, 'noise': without[key]['spread'],
                                       'within_noise': bool(within)}
            print(f'{condition:12s} {key}: without {without[key]["median"]:.3f} (spread '
                  f'{without[key]["spread"]:.3f}), with {median:.3f}: difference '
                  f'{delta:+.3f} -> {"within" if within else "OUTSIDE"} noise', flush=True)
    env['load_after'] = os.getloadavg()
    write_json(args.out, {
        'benchmark': 'view_overhead', 'environment': env,
        'settings': {'rate_hz': args.rate, 'duration_s': args.duration,
                     'repeats': args.repeats, 'trigger': args.trigger,
                     'executor': args.executor, 'conditions': CONDITIONS},
        'summary': summaries, 'verdict': verdict, 'runs': runs})
    return 0


if __name__ == '__main__':
    sys.exit(main())
