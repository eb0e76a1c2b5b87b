"""Start-up: what importing Cockpit costs a fresh Python, and whether the view side loads torch.

Each measurement is a fresh interpreter (``python -X importtime`` is not used: it slows every
import alike) timed from spawn to exit, against ``python -c pass`` in the same round. Rounds
interleave the commands, so a change in machine load hits them alike; medians are reported.

- ``import cockpit``: the package (it loads its parts lazily, on first use);
- ``import cockpit.cli``: what ``cockpit --help``, ``ls``, ``ctl`` and ``attach`` load;
- ``import cockpit.views``: the view model the terminal and notebook views draw from;
- ``import torch``: for scale, what the commands above must never pay.

For each it also prints whether ``torch`` ended up in ``sys.modules``: only ``import torch``
may say yes (``tests/test_build.py`` and ``tests/e2e/test_newcomer.py`` hold the same line).

Run: ``.venv/bin/python benchmarks/startup.py [--rounds 7]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS: dict[str, str] = {
    "python -c pass": "pass",
    "import cockpit": "import cockpit",
    "import cockpit.cli": "import cockpit.cli",
    "import cockpit.views": "import cockpit.views",
    "import torch": "import torch",
}
#: Printed by each child after its import: whether torch came with it.
PROBE = "; import sys; print('torch' in sys.modules)"


def timed(code: str) -> tuple[float, bool]:
    """Seconds from spawning ``python -c code`` to its exit, and whether it imported torch."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + PROBE], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of every command (default 7)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    loads_torch: dict[str, bool] = {}
    for code in COMMANDS.values():  # one unmeasured run each: the file-system cache warms up
        timed(code)
    for index in range(args.rounds):
        names = list(COMMANDS) if index % 2 == 0 else list(COMMANDS)[::-1]
        for name in names:
            seconds, torch_loaded = timed(COMMANDS[name])
            times[name].append(seconds)
            loads_torch[name] = torch_loaded
    base = statistics.median(times["python -c pass"])
    print(f"{'median of ' + str(args.rounds) + ' fresh interpreters':32} {'total ms':>9} {'import ms':>10}  torch loaded")
    for name in COMMANDS:
        median = statistics.median(times[name])
        print(f"{name:32} {median * 1e3:9.1f} {(median - base) * 1e3:+10.1f}  {'yes' if loads_torch[name] else 'no'}")
    leaking = [name for name, loaded in loads_torch.items() if loaded and name != "import torch"]
    print("torch stays out of cockpit's import and its views: " + ("OK" if not leaking else f"NO ({', '.join(leaking)})"))


if __name__ == "__main__":
    main()
