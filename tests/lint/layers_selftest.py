#!/usr/bin/python3
"""Self-test of scripts/check_layers.py (ctest: lint.layers_selftest).

Builds tiny repository trees in a temporary directory (docs/architecture.md with a layer
table, a few bridge/ files) and checks the script's verdict on each:
a clean tree passes; an upward include, a module missing from the table and a 3-module
include cycle within one layer fail and are named.
Usage: layers_selftest.py [PATH/TO/check_layers.py]
"""
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = Path(sys.argv[1]) if len(sys.argv) > 1 else \
    Path(__file__).resolve().parents[2] / "scripts" / "check_layers.py"

TABLE = """# Architecture
<!-- layers:begin -->
| layer | name | modules | what |
|---|---|---|---|
| 1 | base | `log`, `a`, `b`, `c` | leaves |
| 2 | top | `app` | uses the base |
<!-- layers:end -->
"""
CLEAN = {
    "log.h": "#include <stdio.h>\n",
    "log.c": '#include "log.h"\n',
    "a.h": '#include "log.h"\n',
    "b.h": '#include "a.h"\n',
    "c.h": "",
    "app.c": '#include <stdlib.h>\n#include "b.h"\n#include "c.h"\n',
}


def run(files):
    """Writes TABLE and files (None deletes one of CLEAN) into a fresh tree, runs the script."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "docs").mkdir()
        (root / "docs" / "architecture.md").write_text(TABLE)
        (root / "bridge").mkdir()
        for name, text in {**CLEAN, **files}.items():
            if text is not None:
                (root / "bridge" / name).write_text(text)
        r = subprocess.run([sys.executable, str(SCRIPT), "--root", tmp],
                           capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr


failures = 0


def check(what, files, rc, expect):
    global failures
    got_rc, out = run(files)
    ok = got_rc == rc and all(e in out for e in expect)
    print(f"{'ok  ' if ok else 'FAIL'} {what}: exit {got_rc}")
    if not ok:
        failures += 1
        print(f"  expected exit {rc} and {expect}, got:\n  " + out.replace("\n", "\n  "))


check("clean tree", {}, 0, ["layers: 5 modules, 5 includes, all look down"])
check("upward include", {"a.c": '#include "a.h"\n#include "app.h"\n', "app.h": ""}, 1,
      ['bridge/a.c:2: includes "app.h" (layer 2 top) from layer 1 base'])
check("module missing from the table", {"stray.c": '#include "log.h"\n'}, 1,
      ["bridge/stray.c: module 'stray' is not in the layer table of docs/architecture.md"])
check("3-module include cycle in one layer", {"c.h": '#include "b.h"\n', "a.c": '#include "c.h"\n'},
      1, ["include cycle between 3 modules: a, b, c"])
sys.exit(1 if failures else 0)
