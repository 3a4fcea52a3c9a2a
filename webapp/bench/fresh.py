"""Each system measured in a process of its own.

Once a second thread of a process has run torch on the CPU, every later torch call in that
process runs at about one-thread speed. A baseline on the main thread and an engine on its
worker would slow each other and hide that, so every round of every system starts a fresh
interpreter: `python webapp/bench/systems.py SYSTEM JSON` prints the figures as JSON.
`tree` runs the same system from another checkout (today's engine beside the new one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROUND_TIMEOUT_SECONDS = 1800


def run_fresh(system: str, arguments: dict[str, Any], tree: Path | None = None) -> dict[str, Any]:
    """Run `system` (a function of webapp.bench.systems) in a new Python process."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    script = Path(__file__).with_name("systems.py")
    done = subprocess.run(
        [sys.executable, str(script), system, json.dumps(arguments, default=str)],
        env=env,
        capture_output=True,
        text=True,
        timeout=ROUND_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench system {system} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
