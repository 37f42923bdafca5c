"""The sync-versus-gevent table from run-matrix's results: one row per load level (each stage
that holds a level) and worker class, with rps, ok/s (the rate without errors), p50, p95, p99
and errors by kind, from the results' per-stage summaries (exact, from the merged histograms of
the plateau's seconds).

Usage: table.py OUT WORKERS [--check]. Writes OUT/table.md and prints it. With --check, exits 1
unless the shape is what the two worker classes must give from the lowest level to the highest:
sync saturates (its rate grows far less than the users, and its median waits in the queue, at
least 5 times the view's 100 ms), while gevent's rate grows with the users and ends at least 1.5
times sync's, its median still near 100 ms.
"""
import json
import os
import sys

IO_WAIT_S = 0.1  # demo.py's /api/orders/


def ms(ns):
    return "%.1f ms" % (ns / 1e6) if ns else "-"


def plateaus(results):
    return [s for s in results.get("stages", []) if s["kind"] == "steady"]


def errors(summary):
    kinds = ["%s=%d" % (k, v) for k, v in sorted(summary["outcomes"].items())
             if k != "ok" and v > 0]
    return ", ".join(kinds) if kinds else "0"


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    out, workers, check = argv[0], int(argv[1]), "--check" in argv[2:]
    runs = {}
    for cls in ("sync", "gevent"):
        with open(os.path.join(out, cls + ".json")) as f:
            runs[cls] = json.load(f)
    lines = [
        "| users | workers | rps | ok/s | p50 | p95 | p99 | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    rps = {cls: [] for cls in runs}
    p50 = {cls: [] for cls in runs}
    for i, level in enumerate(plateaus(runs["sync"])):
        for cls in ("sync", "gevent"):
            stage = plateaus(runs[cls])[i]
            s = stage["summary"]
            lat = s["latencyNs"]
            rps[cls].append(s["rps"])
            p50[cls].append(lat["p50"] / 1e9)
            # ok/s: the answers that were not errors (a timed-out request counts in rps, not here).
            ok = s["outcomes"].get("ok", 0)
            good = s["rps"] * ok / s["requests"] if s["requests"] else 0.0
            lines.append("| %d | %s | %.1f | %.1f | %s | %s | %s | %s |" % (
                stage["to"], cls, s["rps"], good, ms(lat["p50"]), ms(lat["p95"]), ms(lat["p99"]),
                errors(s)))
    table = "\n".join(lines) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    sys.stdout.write(table)
    if not check:
        return 0
    users = [s["to"] for s in plateaus(runs["sync"])]
    problems = []
    if len(users) < 2:
        problems.append("fewer than two levels")
    else:
        more = users[-1] / users[0]
        grew = {cls: rps[cls][-1] / max(rps[cls][0], 1e-9) for cls in runs}
        if grew["sync"] > 0.6 * more:
            problems.append("sync grew %.2fx for %.1fx the users: it did not saturate" %
                            (grew["sync"], more))
        if p50["sync"][-1] < 5 * IO_WAIT_S:
            problems.append("sync's median at %d users is %.0f ms: nothing queued" %
                            (users[-1], 1000 * p50["sync"][-1]))
        if grew["gevent"] < 0.6 * more:
            problems.append("gevent grew %.2fx for %.1fx the users" % (grew["gevent"], more))
        if rps["gevent"][-1] < 1.5 * rps["sync"][-1]:
            problems.append("gevent at %d users: %.1f rps, not 1.5x sync's %.1f" %
                            (users[-1], rps["gevent"][-1], rps["sync"][-1]))
        if p50["gevent"][-1] > 3 * IO_WAIT_S:
            problems.append("gevent's median at %d users is %.0f ms" %
                            (users[-1], 1000 * p50["gevent"][-1]))
    for p in problems:
        sys.stderr.write("table.py: shape: %s\n" % p)
    if not problems:
        sys.stderr.write("table.py: shape holds: sync %.1f -> %.1f rps (median %.0f ms), gevent "
                         "%.1f -> %.1f rps (median %.0f ms), %d -> %d users, %d workers each\n" %
                         (rps["sync"][0], rps["sync"][-1], 1000 * p50["sync"][-1],
                          rps["gevent"][0], rps["gevent"][-1], 1000 * p50["gevent"][-1],
                          users[0], users[-1], workers))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
