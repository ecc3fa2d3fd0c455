"""docs/operations.md's Prometheus alert rules and docs/grafana-dashboard.json stay true to
/metrics: every metric they name is one bridge/http_api.c writes, and the rules pass
`promtool check rules` (when promtool is installed; scripts/install-deps.sh installs it).
Usage: ops_docs.py SOURCE_DIR"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

src = sys.argv[1]
ops = open(os.path.join(src, "docs", "operations.md")).read()
m = re.search(r"### Alerts to set in Prometheus\s+```yaml\n(.*?)```", ops, re.S)
if not m:
    sys.exit("docs/operations.md: no ```yaml block after '### Alerts to set in Prometheus'")
rules = m.group(1)
dash = json.load(open(os.path.join(src, "docs", "grafana-dashboard.json")))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
http_api = open(os.path.join(src, "bridge", "http_api.c")).read()

bad = []
for where, text in [("operations.md rules", rules)] + [("grafana-dashboard.json", e) for e in exprs]:
    for name in re.findall(r"\b((?:telebridge|process)_[a-z_]+)\b", text):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if f'"{base}"' not in http_api and f'"{name}"' not in http_api:
            bad.append(f"{where}: {name} is not written by bridge/http_api.c")
if bad:
    sys.exit("\n".join(bad))

promtool = shutil.which("promtool")
if promtool:
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(rules)
    r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if r.returncode:
        sys.exit(f"promtool check rules:\n{r.stdout}{r.stderr}")
    print("promtool check rules: OK")
else:
    print("promtool not installed: rules checked for metric names only")
print(f"ok: {len(exprs)} dashboard queries, alert rules")
