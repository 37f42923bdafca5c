#!/usr/bin/env python3
"""A soak of `stampede serve` (scripts/soak runs this; not in CI).

One agent at a steady RATE requests/s (open model) against stampede-test-target for MINUTES, with
a real Prometheus scraping the server's /metrics every second. At minute 1 and at the last minute
it reads, from /proc, the resident set (VmRSS) and open file descriptors of every process: the
server, its agent, the target and Prometheus. At the end it checks that the test's request count
equals what the target served and what Prometheus last scraped. Growth between the two readings
is what a leak looks like; the figures go in the README. Loopback only; every wait is bounded.

usage: soak.py STAMPEDE TARGET [MINUTES] [RATE]
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

TOKEN = "soak-token-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_file(path, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return f.read().strip()
        time.sleep(0.05)
    raise SystemExit(f"soak: {path} never appeared")


def http(url, body=None, content_type="application/yaml", timeout=10):
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if body:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read().decode())


def children(pid):
    """The process's children, whichever of its threads started them."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return found


def reading(pid):
    """(VmRSS in MB, open fds) of a live process."""
    rss = -1.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    stampede, target_bin = sys.argv[1], sys.argv[2]
    minutes = float(sys.argv[3]) if len(sys.argv) > 3 else 30
    rate = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    work = tempfile.mkdtemp(prefix="stampede-soak-")
    procs = []
    try:
        target = subprocess.Popen(
            [target_bin, "--host", "127.0.0.1", "--port", "0", "--port-file", f"{work}/target.port"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(target)
        target_port = int(wait_for_file(f"{work}/target.port"))
        with open(f"{work}/token", "w") as f:
            f.write(TOKEN + "\n")
        serve_log = open(f"{work}/serve.log", "w")
        serve = subprocess.Popen(
            [stampede, "serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
             "--port-file", f"{work}/serve.port", "--token-file", f"{work}/token",
             "--public-metrics", "--logs", f"{work}/logs"],
            stdout=serve_log, stderr=serve_log)
        procs.append(serve)
        serve_port = int(wait_for_file(f"{work}/serve.port"))
        prometheus_port = free_port()
        with open(f"{work}/prometheus.yml", "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n  - job_name: stampede\n"
                    f"    static_configs: [{{targets: ['127.0.0.1:{serve_port}']}}]\n")
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={work}/prometheus.yml",
             f"--storage.tsdb.path={work}/tsdb", f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(prometheus)

        seconds = int(minutes * 60)
        spec = (f"apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{name: soak}}\n"
                f"spec:\n  target: {{url: \"http://127.0.0.1:{target_port}\"}}\n"
                f"  requests: [{{name: home, path: /}}]\n  load: {{rate: {rate}}}\n"
                f"  duration: {seconds}s\n  agents: 1\n")
        created = http(f"http://127.0.0.1:{serve_port}/api/v1/loadtests", spec.encode())
        test_id = created["id"]
        started = time.time()
        base = f"http://127.0.0.1:{serve_port}/api/v1/loadtests/{test_id}"

        def processes():
            agents = children(serve.pid)
            return {"stampede serve": serve.pid,
                    "stampede-agent": agents[0] if agents else None,
                    "stampede-test-target": target.pid, "prometheus": prometheus.pid}

        def read_all():
            return {name: reading(pid) for name, pid in processes().items() if pid}

        time.sleep(max(0.0, started + 60 - time.time()))
        first = read_all()
        time.sleep(max(0.0, started + seconds - 30 - time.time()))
        last = read_all()

        deadline = started + seconds + 120
        status = {}
        while time.time() < deadline:
            status = http(base).get("status", {})
            if status.get("phase") in ("Succeeded", "Failed", "Aborted"):
                break
            time.sleep(1)
        requests = int(status.get("summary", {}).get("requests", 0))
        with urllib.request.urlopen(f"http://127.0.0.1:{target_port}/stats", timeout=10) as a:
            served = json.loads(a.read().decode())["requests"]
        time.sleep(3)  # a few more scrapes of the final counts
        query = urllib.parse.quote('sum(stampede_requests_total{loadtest="soak"})')
        with urllib.request.urlopen(
                f"http://127.0.0.1:{prometheus_port}/api/v1/query?query={query}", timeout=10) as a:
            result = json.loads(a.read().decode())["data"]["result"]
        scraped = int(float(result[0]["value"][1])) if result else -1

        print(f"soak: {minutes:g} min at {rate} req/s, one agent; phase {status.get('phase')}, "
              f"achieved {status.get('summary', {}).get('rps', '?')} req/s")
        print(f"| process | RSS at minute 1 | RSS at minute {minutes - 0.5:g} | fds at 1 | fds at "
              f"{minutes - 0.5:g} |")
        print("|---|---|---|---|---|")
        for name in first:
            r1, f1 = first[name]
            r2, f2 = last.get(name, (-1, -1))
            print(f"| {name} | {r1:.1f} MB | {r2:.1f} MB | {f1} | {f2} |")
        print(f"requests: test {requests}, target served {served}, Prometheus {scraped}")
        ok = status.get("phase") == "Succeeded" and requests == served == scraped
        print("soak: " + ("totals agree" if ok else "MISMATCH or failure; see " + work))
        return 0 if ok else 1
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
