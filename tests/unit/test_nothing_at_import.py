"""Nothing happens at import (ARCHITECTURE.md, the engineering style's third rule): importing any production module
(the library, every service, the apps) builds no settings, opens no connection, database or file for writing,
starts no process or thread. Settings, clients and engines are built in the lifespan, or by the command that
needs them. Checked in a fresh interpreter with an audit hook, so the modules are really imported here, not
found already imported by an earlier test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.unit.test_architecture import ROOT, production_modules

pytestmark = pytest.mark.unit

# Runs in the child: imports each module named on the command line and reports, per module, what its import did.
CHILD = r"""
import importlib, json, sys, threading

import pydantic_settings

events = []
WATCHED = {"socket.connect", "socket.bind", "subprocess.Popen", "os.system", "os.posix_spawn", "os.fork",
           "os.exec", "sqlite3.connect"}


def hook(event, args):
    if event in WATCHED:
        # urllib3 probes for IPv6 support at its import by binding ::1 on port 0; that is the library, not us.
        if event == "socket.bind" and len(args) > 1 and args[1] == ("::1", 0):
            return
        events.append(f"{event} {args!r:.160}")
    elif event == "open" and len(args) > 1 and isinstance(args[1], str) and any(c in args[1] for c in "wax+"):
        events.append(f"open for writing {args[0]!r:.160}")


built = []
original_init = pydantic_settings.BaseSettings.__init__


def recording_init(self, *a, **kw):
    built.append(type(self).__qualname__)
    original_init(self, *a, **kw)


pydantic_settings.BaseSettings.__init__ = recording_init
sys.addaudithook(hook)
report = {}
threads = {t.ident for t in threading.enumerate()}
for name in sys.argv[1:]:
    events.clear()
    built.clear()
    try:
        importlib.import_module(name)
        error = None
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    new_threads = sorted(t.name for t in threading.enumerate() if t.ident not in threads)
    threads |= {t.ident for t in threading.enumerate()}
    found = {"events": list(events), "settings": [f"{s} built" for s in built], "threads": new_threads}
    if error:
        found["error"] = [error]
    if any(found.values()):
        report[name] = found
print(json.dumps(report))
"""


def test_importing_any_production_module_does_nothing() -> None:
    # `__main__` modules run their command when imported: that is what they are for.
    names = sorted(m.name for m in production_modules() if m.floor != "testing" and not m.name.endswith("__main__"))
    assert len(names) > 100, names  # the library, five services and the apps
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *names], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert not report, "modules that do something when imported:\n" + "\n".join(
        f"{name}: {'; '.join(x for xs in what.values() for x in xs)}" for name, what in sorted(report.items())
    )
