#!/usr/bin/python3
"""Benchmark bookkeeping for bench/run.sh (standard library only).

Why: run.sh drives processes; turning their JSON outputs into comparable figures (merged
latency histograms, CPU per delivered frame, medians over repeats, Telebridge/baseline
ratios) is easier to get right in Python than in shell.

    report.py record KEY=VALUE... --pub FILE --ws FILE [FILE...]   -> one JSON line (stdout)
    report.py summarize RAW.jsonl [--quick]                          -> table + JSON lines

`record` merges the tb-wsload summaries of one measurement (several processes for the idle
scenario) by adding counts and histogram buckets, then recomputes the percentiles.
`summarize` groups records by (scenario, bridge), takes medians over repeats, finds the
highest passing saturate step, prints a table, one JSON line per (scenario, bridge) and one
per ratio Telebridge / baseline.  `telebridge-base` (run.sh --baseline-telebridge: an older
Telebridge binary) is one more baseline: its row, and ratios telebridge/telebridge-base.
Its exit status is 1 if a record carries an error, or a measurement delivered no frames (the
latter only counts in --quick mode or for telebridge and telebridge-base).
"""
import json
import statistics
import sys

SATURATE_MAX_P99_US = 50_000
COUNT_FIELDS = ("conns_target", "conns_ok", "connect_failures", "conns_open_at_end",
                "slow_conns", "fast_open_at_end", "conns_receiving", "closed_by_server",
                "read_errors", "protocol_errors", "frames", "data_frames", "other_frames",
                "bytes", "lost", "tail_lost", "dup", "reordered", "compressed_frames",
                "inflated_bytes")


def percentile(hist, q):
    total = sum(c for _, c in hist)
    if not total:
        return 0
    rank = min(int(q * total), total - 1)
    acc = 0
    for value, count in hist:
        acc += count
        if acc > rank:
            return value
    return hist[-1][0]


def merge_ws(summaries):
    out = {k: 0 for k in COUNT_FIELDS}
    buckets = {}
    first_span = []
    for s in summaries:
        for k in COUNT_FIELDS:
            out[k] += s.get(k, 0)
        for value, count in s.get("hist", []):
            buckets[value] = buckets.get(value, 0) + count
        first_span.append(s.get("data_span_s", 0.0))
    hist = sorted(buckets.items())
    n = sum(c for _, c in hist)
    out["lat_us"] = {"count": n, "p50": percentile(hist, 0.5), "p90": percentile(hist, 0.9),
                     "p99": percentile(hist, 0.99), "p999": percentile(hist, 0.999),
                     "max": hist[-1][0] if hist else 0}
    span = max(first_span) if first_span else 0.0
    out["data_span_s"] = span
    out["recv_fps"] = out["data_frames"] / span if span > 0 else 0.0
    return out


def parse_value(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def cmd_record(argv):
    rec, pub_files, ws_files, mode = {}, [], [], None
    for a in argv:
        if a in ("--pub", "--ws"):
            mode = a
        elif mode == "--pub":
            pub_files.append(a)
        elif mode == "--ws":
            ws_files.append(a)
        else:
            k, _, v = a.partition("=")
            rec[k] = parse_value(v)
    errors = [rec["error"]] if rec.get("error") else []
    pubs, wss = [], []
    for f in pub_files:
        try:
            pubs.append(json.loads(open(f).read().strip().splitlines()[-1]))
        except (OSError, ValueError, IndexError):
            errors.append(f"no tb-pub summary in {f}")
    for f in ws_files:
        try:
            wss.append(json.loads(open(f).read().strip().splitlines()[-1]))
        except (OSError, ValueError, IndexError):
            errors.append(f"no tb-wsload summary in {f}")
    ws = merge_ws(wss)
    rec.update({k: ws[k] for k in ws})
    if pubs:
        rec["sent"] = sum(p["sent"] for p in pubs)
        rec["offered_mqtt_rate"] = sum(p["target_rate"] for p in pubs)
        rec["pub_achieved_rate"] = sum(p["achieved_rate"] for p in pubs)
        rec["pub_max_lag_ms"] = max(p["max_lag_ms"] for p in pubs)
    expected = rec.get("expected_frames", 0)
    rec["loss_frac"] = (rec["lost"] / expected) if expected else 0.0
    ticks = rec.get("cpu_ticks", 0)
    hz = rec.get("clk_tck", 100)
    rec["bridge_cpu_s"] = ticks / hz
    rec["cpu_us_per_frame"] = (ticks / hz * 1e6 / rec["data_frames"]) if rec["data_frames"] else None
    # WebSocket bytes the clients received per frame (compressed when deflate was negotiated;
    # TLS record overhead not included)
    rec["bytes_per_frame"] = (rec["bytes"] / rec["frames"]) if rec.get("frames") else None
    if rec.get("client_cpu_ticks") is not None:
        rec["client_cpu_s"] = rec["client_cpu_ticks"] / hz
    if rec.get("rss_conn_kb") is not None and rec.get("rss_before_kb") is not None \
            and rec["conns_ok"]:
        rec["rss_per_conn_b"] = round((rec["rss_conn_kb"] - rec["rss_before_kb"]) * 1024
                                      / rec["conns_ok"])
    if errors:
        rec["error"] = "; ".join(errors)
    print(json.dumps(rec, sort_keys=True))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def saturate_best(steps):
    """Highest passing step of one (bridge, repeat): no loss, p99 within the limit."""
    passing = [s for s in steps if not s.get("error") and s["lost"] == 0 and s["data_frames"]
               and s["lat_us"]["p99"] <= SATURATE_MAX_P99_US]
    if not passing:
        return None
    return max(passing, key=lambda s: s["recv_fps"])


def collapse(records):
    """One row per (scenario, bridge): medians over repeats."""
    groups = {}
    for r in records:
        groups.setdefault((r["scenario"], r["bridge"]), []).append(r)
    rows = {}
    for (scen, bridge), recs in groups.items():
        if scen == "saturate":
            by_rep = {}
            for r in recs:
                by_rep.setdefault(r.get("repeat", 0), []).append(r)
            best = [saturate_best(v) for v in by_rep.values()]
            reps = [b for b in best if b] or [max(recs, key=lambda r: r["recv_fps"])]
            for rep_steps, b in zip(by_rep.values(), best):
                if b is not None:
                    b["max_pass_fps"] = b["recv_fps"]
        else:
            reps = recs
        row = {"scenario": scen, "bridge": bridge, "repeats": len(reps),
               "errors": sorted({r["error"] for r in recs if r.get("error")})}
        for key in ("recv_fps", "loss_frac", "lost", "dup", "reordered", "data_frames",
                    "cpu_us_per_frame", "hwm_kb", "rss_end_kb", "rss_per_conn_b",
                    "conns_ok", "conns_target", "conns_receiving", "connect_failures",
                    "max_pass_fps", "rss_growth_kb", "client_cpu_s", "bridge_cpu_s",
                    "expected_frames", "pub_achieved_rate", "bytes_per_frame",
                    "compressed_frames"):
            row[key] = median([r.get(key) for r in reps])
        for q in ("p50", "p99", "p999", "max"):
            row[q + "_us"] = median([r["lat_us"][q] for r in reps if r["lat_us"]["count"]])
        rows[(scen, bridge)] = row
    return rows


def fmt(v, spec="{:.0f}"):
    return "-" if v is None else spec.format(v)


def print_table(rows):
    hdr = ("scenario", "bridge", "frames/s", "loss%", "p50 ms", "p99 ms", "p999 ms",
           "CPU us/frame", "peak RSS MB", "notes")
    lines = [hdr]
    for (scen, bridge), r in sorted(rows.items()):
        notes = []
        if r.get("max_pass_fps") is not None:
            notes.append(f"max passing {r['max_pass_fps']:.0f} frames/s")
        elif scen == "saturate":
            notes.append("no step passed (figures: best failing step)")
        if scen == "idle" and r.get("rss_per_conn_b") is not None:
            notes.append(f"{r['rss_per_conn_b']:.0f} B RSS/conn, "
                         f"{fmt(r['conns_receiving'])}/{fmt(r['conns_target'])} receiving")
        if r.get("bytes_per_frame") is not None:
            notes.append(f"{r['bytes_per_frame']:.0f} B/frame")
        if r.get("rss_growth_kb") is not None:
            notes.append(f"RSS growth {r['rss_growth_kb'] / 1024:.1f} MB")
        if r["errors"]:
            notes.append("ERROR: " + "; ".join(r["errors"])[:80])
        lines.append((scen, bridge, fmt(r["recv_fps"]),
                      fmt(100 * r["loss_frac"] if r["loss_frac"] is not None else None, "{:.3f}"),
                      fmt(r["p50_us"] / 1000 if r["p50_us"] is not None else None, "{:.2f}"),
                      fmt(r["p99_us"] / 1000 if r["p99_us"] is not None else None, "{:.2f}"),
                      fmt(r["p999_us"] / 1000 if r["p999_us"] is not None else None, "{:.2f}"),
                      fmt(r["cpu_us_per_frame"], "{:.2f}"),
                      fmt(r["hwm_kb"] / 1024 if r["hwm_kb"] is not None else None, "{:.1f}"),
                      ", ".join(notes)))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(hdr))]
    for line in lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())


TELEBRIDGES = ("telebridge", "telebridge-base", "telebridge-tls", "telebridge-deflate",
               "telebridge-tls-deflate")
RATIO_KEYS = ("cpu_us_per_frame", "p99_us", "hwm_kb", "rss_per_conn_b", "recv_fps",
              "max_pass_fps", "bytes_per_frame")


def ratios(rows):
    """telebridge / every other bridge of the same scenario (telebridge-base included)."""
    out = []
    for (scen, bridge), tb in sorted(rows.items()):
        if bridge != "telebridge":
            continue
        for (scen2, base), b in sorted(rows.items()):
            if scen2 != scen or base == "telebridge":
                continue
            r = {"ratio": f"telebridge/{base}", "scenario": scen}
            for k in RATIO_KEYS:
                if tb.get(k) is not None and b.get(k):
                    r[k] = round(tb[k] / b[k], 4)
            out.append(r)
    return out


def cmd_summarize(argv):
    quick = "--quick" in argv
    path = [a for a in argv if not a.startswith("--")][0]
    records = [json.loads(line) for line in open(path) if line.strip()]
    if not records:
        print("no records", file=sys.stderr)
        return 1
    for r in records:
        if r["scenario"] == "slow":
            r["rss_growth_kb"] = r.get("rss_end_kb", 0) - r.get("rss_conn_kb", 0)
        if r["scenario"] == "slow-base":
            r["rss_growth_kb"] = r.get("rss_end_kb", 0) - r.get("rss_conn_kb", 0)
    rows = collapse(records)
    print_table(rows)
    for row in sorted(rows.values(), key=lambda x: (x["scenario"], x["bridge"])):
        print(json.dumps(row, sort_keys=True))
    for r in ratios(rows):
        print(json.dumps(r, sort_keys=True))
    bad = []
    for r in records:
        if r.get("error"):
            bad.append(f"{r['scenario']}/{r['bridge']}: {r['error']}")
        elif r["data_frames"] == 0 and (quick or r["bridge"] in TELEBRIDGES):
            bad.append(f"{r['scenario']}/{r['bridge']}: no frames delivered")
    for b in bad:
        print("FAIL " + b, file=sys.stderr)
    return 1 if bad else 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("record", "summarize"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "record":
        cmd_record(sys.argv[2:])
        return 0
    return cmd_summarize(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
