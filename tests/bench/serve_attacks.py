#!/usr/bin/env python3
"""What `stampede serve` holds up to, measured (scripts/bench-serve runs this).

Starts `stampede serve` on loopback with a token, then, one at a time:
  1. eight concurrent chunked uploads of 600 MB each (the body limit is 1 MiB);
  2. eight concurrent 1 MiB bodies of nested "[[[..." (the YAML bound);
  3. eight concurrent 1 MiB flat lists "[1,1,1,...]";
  4. 100 clients trickling one header byte a second, while /healthz is asked 20 times.
For each it prints the server's peak RSS (VmHWM, after the attack, from /proc) and what the
clients got; for the slow clients, /healthz's latency. Loopback only; every loop is bounded.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOKEN = "bench-serve-token-0123456789abcdef"


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def request(port, head, body_chunks=(), timeout=30.0):
    """Sends a head and body chunks; returns the status line (or the error)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        for chunk in body_chunks:
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server refused and closed: read what it said
        data = b""
        while b"\r\n" not in data:
            part = s.recv(4096)
            if not part:
                break
            data += part
        return data.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed)"
    except OSError as e:
        return f"({e.__class__.__name__})"
    finally:
        s.close()


def post_head(port, length=None, chunked=False):
    head = (f"POST /api/v1/loadtests HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/yaml\r\n")
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode()


def in_parallel(n, fn):
    results = [None] * n

    def run(i):
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def chunked_upload(port, total=600 << 20, chunk=64 << 10):
    piece = f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n"
    return request(port, post_head(port, chunked=True), (piece for _ in range(total // chunk)))


def main():
    binary = sys.argv[1]
    workdir = tempfile.mkdtemp(prefix="stampede-bench-serve-")
    with open(f"{workdir}/token", "w") as f:
        f.write(TOKEN + "\n")
    serve = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
                              "--port-file", f"{workdir}/port", "--logs", f"{workdir}/logs",
                              "--token-file", f"{workdir}/token"],
                             stdout=subprocess.DEVNULL, stderr=open(f"{workdir}/serve.log", "w"))
    try:
        for _ in range(200):
            if os.path.exists(f"{workdir}/port") and open(f"{workdir}/port").read().strip():
                break
            time.sleep(0.05)
        port = int(open(f"{workdir}/port").read())
        print(f"| attack | server peak RSS (VmHWM) | answers |")
        print(f"|---|---|---|")
        print(f"| (idle, after start) | {vm_hwm_kb(serve.pid) / 1024:.1f} MB | |")

        answers = in_parallel(8, lambda: chunked_upload(port))
        print(f"| 8 x 600 MB chunked uploads | {vm_hwm_kb(serve.pid) / 1024:.1f} MB | {sorted(set(answers))} |")

        nested = b"[" * (1 << 20)
        answers = in_parallel(8, lambda: request(port, post_head(port, len(nested)), (nested,)))
        print(f"| 8 x 1 MiB nested [[[ | {vm_hwm_kb(serve.pid) / 1024:.1f} MB | {sorted(set(answers))} |")

        flat = b"[" + b"1," * ((1 << 20) // 2 - 2) + b"1]"  # just under 1 MiB
        answers = in_parallel(8, lambda: request(port, post_head(port, len(flat)), (flat,)))
        print(f"| 8 x 1 MiB flat list | {vm_hwm_kb(serve.pid) / 1024:.1f} MB | {sorted(set(answers))} |")

        # 100 slow clients: a byte of a request head every second, for at most 9 s (the server cuts
        # a head off 10 s after its first byte).
        slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(100)]
        stop = threading.Event()
        head = f"GET /api/v1/loadtests HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode()

        def trickle():
            for i in range(9):
                for s in slow:
                    try:
                        s.send(head[i:i + 1])
                    except OSError:
                        pass
                if stop.wait(1.0):
                    return

        trickler = threading.Thread(target=trickle)
        trickler.start()
        time.sleep(0.5)
        latencies = []
        for _ in range(20):
            t0 = time.monotonic()
            status = request(port, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(), timeout=10)
            latencies.append((time.monotonic() - t0) * 1000)
            if not status.startswith("HTTP/1.1 200"):
                latencies[-1] = float("inf")
            time.sleep(0.3)
        stop.set()
        trickler.join()
        for s in slow:
            s.close()
        latencies.sort()
        print(f"| 100 clients trickling a header byte a second | {vm_hwm_kb(serve.pid) / 1024:.1f} MB | "
              f"/healthz p50 {latencies[len(latencies) // 2]:.2f} ms, max {latencies[-1]:.2f} ms (20 asks) |")
    finally:
        serve.terminate()
        serve.wait(20)
        subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
