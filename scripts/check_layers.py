#!/usr/bin/python3
"""Check the include layering of bridge/ against the layer table of docs/architecture.md.

The table sits between the lines <!-- layers:begin --> and <!-- layers:end -->; each row is
    | LAYER (integer, higher = higher up) | NAME | `module`, `module`, ... | free text |
and module `x` stands for bridge/x.c and bridge/x.h. For every bridge/*.c and bridge/*.h
this reports: a module missing from the table; a quoted #include of a header that is not a
module of the table; an include of a header from a higher layer; and include cycles
(strongly connected components of more than two modules in the module include graph).
Angle-bracket (system) includes are ignored. Exit 0 when clean, 1 with every problem.

Usage: check_layers.py [--root REPO_ROOT]     (CI: ctest -R lint.layers)
"""
import argparse
import re
import sys
from pathlib import Path

DOC = "docs/architecture.md"
BEGIN, END = "<!-- layers:begin -->", "<!-- layers:end -->"
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]*)"')
SEPARATOR = re.compile(r"^[\s|:-]+$")


def read_table(doc, problems):
    """Returns {module: (layer, layer name)} from the table between the markers."""
    lines = [l.strip() for l in doc.read_text().splitlines()]
    try:
        start = lines.index(BEGIN)
        end = lines.index(END, start)
    except ValueError:
        problems.append(f"{DOC}: no layer table between {BEGIN} and {END}")
        return {}
    table, seen_separator = {}, False
    for lineno, line in enumerate(lines[start + 1:end], start + 2):
        if not line.startswith("|"):
            continue
        if SEPARATOR.match(line):
            seen_separator = True
            continue
        if not seen_separator:  # header row
            continue
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 4 or not re.fullmatch(r"-?\d+", cells[1]):
            problems.append(f"{DOC}:{lineno}: layer table row without an integer layer: {line}")
            continue
        layer, name = int(cells[1]), cells[2].strip("`* ")
        for module in re.findall(r"`([^`]+)`", cells[3]):
            if module in table:
                problems.append(f"{DOC}:{lineno}: module '{module}' is listed twice "
                                f"(layers {table[module][0]} and {layer})")
            table[module] = (layer, name)
    if not table and not problems:
        problems.append(f"{DOC}: the layer table lists no modules")
    return table


def cycles(graph):
    """Strongly connected components of graph {node: set(nodes)} (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="repository root (default: the parent of scripts/)")
    root = parser.parse_args().root
    problems = []
    doc = root / DOC
    if doc.is_file():
        table = read_table(doc, problems)
    else:
        table = {}
        problems.append(f"{DOC}: not found under {root}")

    files = sorted(p for p in (root / "bridge").glob("*.[ch]") if p.is_file())
    modules = {p.stem for p in files}
    graph, n_includes = {m: set() for m in modules}, 0
    for path in files:
        rel, module = f"bridge/{path.name}", path.stem
        if table and module not in table:
            problems.append(f"{rel}: module '{module}' is not in the layer table of {DOC}")
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            n_includes += 1
            header = m.group(1)
            target = header[:-2] if header.endswith(".h") else None
            if target and target != module:
                graph[module].add(target)
            if not table:
                continue
            if target not in table:
                problems.append(f'{rel}:{lineno}: includes "{header}", which is not a bridge '
                                f"module in the layer table of {DOC}")
            elif module in table and table[target][0] > table[module][0]:
                (tl, tn), (ml, mn) = table[target], table[module]
                problems.append(f'{rel}:{lineno}: includes "{header}" (layer {tl} {tn}) '
                                f"from layer {ml} {mn}")

    for component in cycles(graph):
        if len(component) > 2:
            problems.append(f"include cycle between {len(component)} modules: "
                            + ", ".join(component))

    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"layers: {len(problems)} problem(s) in {len(modules)} modules, "
              f"{n_includes} includes", file=sys.stderr)
        return 1
    print(f"layers: {len(modules)} modules, {n_includes} includes, all look down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
