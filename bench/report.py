#!/usr/bin/env python3
"""Turn the raw outputs of bench/run.sh (a results dir) into markdown tables on stdout."""
import os
import re
import statistics
import sys

D = sys.argv[1]
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def rounds(prefix, name, ext="txt"):
    """Paths of one scenario's outputs: `prefix_name_rN.ext` for every round (or the
    single-run `prefix_name.ext` of older layouts), in round order."""
    found = []
    for fn in os.listdir(D):
        m = re.fullmatch(rf"{re.escape(prefix)}_{re.escape(name)}(?:_r(\d+))?\.{ext}", fn)
        if m:
            found.append((int(m.group(1) or 0), os.path.join(D, fn)))
    return [p for _, p in sorted(found)]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def parse_wrk(name):
    """The median over rounds of each figure, plus the per-round req/s and p99."""
    runs = [parse_wrk_file(p) for p in rounds("wrk", name)]
    if not runs:
        return None
    r = {k: med([x[k] for x in runs]) for k in ("rps", "p50", "p99", "reqs")}
    r["non2xx"] = sum(x["non2xx"] for x in runs)
    r["sock"] = " ".join(x["sock"] for x in runs)
    r["rps_all"] = [x["rps"] for x in runs]
    r["p99_all"] = [x["p99"] for x in runs]
    r["first_reqs"] = runs[0]["reqs"]
    return r


def parse_wrk_file(path):
    text = open(path).read()
    r = {"rps": None, "p50": None, "p99": None, "non2xx": 0, "sock": "0/0/0/0", "reqs": None}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m:
            r[key] = float(m.group(1)) * UNIT[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["sock"] = "/".join(m.groups())
    m = re.search(r"(\d+) requests in", text)
    if m:
        r["reqs"] = int(m.group(1))
    return r


def curl2(name):
    path = os.path.join(D, f"curl2_{name}.txt")
    if not os.path.exists(path):
        return None
    seconds = []
    for line in open(path):
        parts = line.split()
        if len(parts) == 2:
            seconds.append(float(parts[1]) * 1000)
    return statistics.median(seconds) if seconds else None


def kv(fname):
    out = {}
    p = os.path.join(D, fname)
    if os.path.exists(p):
        for line in open(p):
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    out[k] = v
    return out


def f(x, nd=2):
    return "n/a" if x is None else f"{x:,.{nd}f}"


def ratio(a, b, nd=3):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.{nd}f}"


ROWS = [
    ("direct", "direct → nginx fast upstream :18000"),
    ("nginx", "nginx proxy :18090 (no mirror)"),
    ("umbra", "umbra :18080 (no shadow)"),
    ("umbra_shadow_slow", "umbra, 100 % shadow → 200 ms slow"),
    ("nginx_mirror_slow", "nginx `mirror`, 100 % → 200 ms slow"),
    ("umbra_shadow_fast", "umbra, 100 % shadow → fast nginx (compare + SQLite)"),
    ("nginx_mirror_fast", "nginx `mirror`, 100 % → fast nginx"),
]
W = {k: parse_wrk(k) for k, _ in ROWS}
C = {k: curl2(k) for k, _ in ROWS}

print("| scenario | req/s | p50 ms | p99 ms | requests | non-2xx/3xx | socket errors c/r/w/t | 2nd req on one keep-alive conn, ms (median of 5) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for k, label in ROWS:
    w = W[k]
    if w is None:
        print(f"| {label} | (not run) | | | | | | |")
        continue
    reqs = "n/a" if w["reqs"] is None else f"{w['reqs']:.0f}"
    print(f"| {label} | {f(w['rps'], 0)} | {f(w['p50'], 3)} | {f(w['p99'], 3)} | {reqs} | {w['non2xx']} | {w['sock']} | {f(C[k], 1)} |")


def g(k, field):
    return W[k][field] if W.get(k) else None


print()
print("| ratio | value |")
print("|---|---:|")
print(f"| umbra / nginx req/s (no shadow) | {ratio(g('umbra', 'rps'), g('nginx', 'rps'))} |")
def per_round(kind, name):
    """The number in each round's `kind` file for this run (None where there is none)."""
    out = []
    for p in rounds(kind, name):
        try:
            out.append(float(open(p).read().strip()))
        except (OSError, ValueError):
            out.append(None)
    return out

def cpu(name):
    return med(per_round("cpu", name))
for name, label in [("nginx", "nginx proxy"), ("umbra", "umbra (no shadow)"),
                    ("umbra_shadow_fast", "umbra, 100 % shadow → fast (incl. compare + store)"),
                    ("nginx_mirror_fast", "nginx mirror → fast")]:
    if cpu(name) is not None:
        print(f"| proxy CPU per request (user+sys, µs): {label} | {cpu(name):.1f} |")
if cpu("umbra") and cpu("nginx"):
    print(f"| nginx CPU per request / umbra CPU per request (>1: umbra cheaper) | {cpu('nginx') / cpu('umbra'):.3f} |")
dp = g("direct", "p99")
up, np_ = g("umbra", "p99"), g("nginx", "p99")
add_u = None if up is None or dp is None else up - dp
add_n = None if np_ is None or dp is None else np_ - dp
print(f"| p99 added over direct: umbra vs nginx (ms) | {f(add_u, 3)} vs {f(add_n, 3)} |")
for kind in ("slow", "fast"):
    print(f"| umbra shadow→{kind}: req/s vs umbra no-shadow | {ratio(g(f'umbra_shadow_{kind}', 'rps'), g('umbra', 'rps'))} |")
    print(f"| umbra shadow→{kind}: p99 vs umbra no-shadow | {ratio(g(f'umbra_shadow_{kind}', 'p99'), g('umbra', 'p99'), 2)} |")
    print(f"| nginx mirror→{kind}: req/s vs nginx no-mirror | {ratio(g(f'nginx_mirror_{kind}', 'rps'), g('nginx', 'rps'))} |")
    print(f"| nginx mirror→{kind}: p99 vs nginx no-mirror | {ratio(g(f'nginx_mirror_{kind}', 'p99'), g('nginx', 'p99'), 2)} |")
    print(f"| umbra shadow→{kind} req/s / nginx mirror→{kind} req/s | {ratio(g(f'umbra_shadow_{kind}', 'rps'), g(f'nginx_mirror_{kind}', 'rps'))} |")

for kind in ("slow", "fast"):
    s = kv(f"store_{kind}_r1.txt") or kv(f"store_{kind}.txt")
    if not s:
        continue
    print(f"| {kind}-shadow run: comparisons in SQLite endpoint_stats, same/different/shadow_error (incl. 2 s warm-up) vs requests in the measured wrk run | {s.get('stats_total', 'n/a')} ({s.get('stats_same', '?')}/{s.get('stats_different', '?')}/{s.get('stats_shadow_error', '?')}) vs {g(f'umbra_shadow_{kind}', 'first_reqs') or 'n/a'} (first round) |")
    print(f"| {kind}-shadow run: rows in `comparisons` / of which stored in full (keep_same = 0.05 samples identical ones) | {s.get('comparisons', 'n/a')} / {s.get('full_rows', 'n/a')} |")

def steal(name):
    """Per round, the share (%) of CPU time the hypervisor took from this VM during the run."""
    return per_round("steal", name)


# Rounds in which neither the direct, the nginx nor the umbra run lost more than STEAL_MAX % of
# the CPUs to the hypervisor: the same figures over those rounds only.
STEAL_MAX = 2.0
S = {k: steal(k) for k in ("direct", "nginx", "umbra")}
n_rounds = min(len(W[k]["rps_all"]) if W.get(k) else 0 for k in S)
if all(len(S[k]) >= n_rounds for k in S) and n_rounds:
    clean = [i for i in range(n_rounds) if all(S[k][i] is not None and S[k][i] <= STEAL_MAX for k in S)]
    def clean_med(k, field):
        return med([W[k][field + "_all"][i] for i in clean]) if clean else None
    print(f"| rounds where no run lost > {STEAL_MAX:g} % of the CPUs to host steal | {len(clean)} of {n_rounds} |")
    print(f"| those rounds: umbra / nginx req/s (no shadow) | {ratio(clean_med('umbra', 'rps'), clean_med('nginx', 'rps'))} |")
    cd, cu, cn = clean_med("direct", "p99"), clean_med("umbra", "p99"), clean_med("nginx", "p99")
    print(f"| those rounds: p99 added over direct, umbra vs nginx (ms) | {f(None if cu is None or cd is None else cu - cd, 3)} vs {f(None if cn is None or cd is None else cn - cd, 3)} |")

print()
print("| scenario | req/s per round | p99 ms per round | host steal % per round |")
print("|---|---|---|---|")
for k, label in ROWS:
    w = W[k]
    if w is not None:
        st = " / ".join("n/a" if x is None else f"{x:.1f}" for x in steal(k)) or "n/a"
        print(f"| {label} | {' / '.join(f(x, 0) for x in w['rps_all'])} | {' / '.join(f(x, 3) for x in w['p99_all'])} | {st} |")

m = kv("mem.txt")
print()
print("| umbra memory (VmRSS) | value |")
print("|---|---:|")
def mb(x):
    try:
        return f"{int(x) / 1024:.1f} MiB"
    except (TypeError, ValueError):
        return "n/a"
print(f"| idle, right after start | {mb(m.get('idle_kb'))} |")
print(f"| holding 1,000 keep-alive client connections (peak while held) | {mb(m.get('rss_kb'))} (opened={m.get('opened', '?')}, 200s={m.get('ok', '?')}, failed={m.get('failed', '?')}) |")
print(f"| after all no-shadow wrk runs | {mb(m.get('after_wrk_kb'))} |")
