"""Load run for the edge (issue 7), all on this machine, one after the
other with the same flags:

  (a) ResolveCustomerProfile called directly over gRPC (h2load),
  (b) the same call as REST through the full edge — token already seen,
      every rate-limit tier, circuit breaker, balancing, audit — (wrk),
  (c) nginx proxying (HTTP/1.1, kept-alive upstream) to a body of the same
      size that it also serves itself (wrk).

Prints requests/s, latency percentiles and the CPU microseconds each
server spent per request. Needs a release build (`cargo build --release
-p harsha`), h2load (nghttp2-client), wrk and nginx (Debian packages).

  .venv/bin/python scripts/bench_edge.py [--seconds 15] [--connections 16]

With --telemetry, instead runs (b) on fresh meshes with tracing spans off
(RUST_LOG=off), on (RUST_LOG=info, nothing exported), and on with OTLP/HTTP
export to a local collector sampling --sample (0.1) of traces, interleaved
--rounds (3) times, and prints the median rates and the share each costs.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pids) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (FileNotFoundError, IndexError):
            pass
    return total


def children(pid) -> list:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = Path(f"/proc/{pid}/task/{task.name}/children")
        if kids.exists():
            for kid in kids.read_text().split():
                found += children(int(kid))
    return found


def http(method, url, body=None, token=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read()), reply


def parse_wrk(output: str) -> dict:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    percentiles = {}
    for p in ("50", "90", "99"):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", output)
        if m:
            value = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            percentiles[p] = value
    return {"rps": rate, "requests": total, "errors": int(non2xx.group(1)) if non2xx else 0, "ms": percentiles}


def parse_h2load(output: str) -> dict:
    rate = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output).group(1))
    done = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", output)
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", output)
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    mean = float(m.group(5)) * unit[m.group(6)] if m else None
    return {"rps": rate, "requests": int(done.group(2)), "errors": int(done.group(4)) + int(done.group(5)), "mean_ms": mean}


class DiscardingCollector:
    """An OTLP/HTTP receiver that accepts every export and keeps a count."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        collector = self
        self.exports = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.exports += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


@contextlib.contextmanager
def bench_mesh(binary: Path, work: Path, extra_env: dict):
    """`harsha up --demo` on fresh data with a never-limiting plan and a
    logged-in user; yields (edge URL, token, customer port, server pids)."""
    ports = {name: free_port() for name in ("customer", "inventory", "pricing", "auth", "sync", "order", "edge")}
    env = dict(os.environ, RUST_LOG="warn")
    env.update(extra_env)
    for name in ("customer", "inventory", "pricing", "auth", "sync", "order"):
        env[f"HARSHA__SERVICES__{name.upper()}"] = f"127.0.0.1:{ports[name]}"
    env["HARSHA__EDGE__LISTEN"] = f"127.0.0.1:{ports['edge']}"
    data = Path(tempfile.mkdtemp(prefix="data-", dir=work))
    mesh = subprocess.Popen([str(binary), "up", "--demo", "--data-dir", str(data)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        password = None
        for line in mesh.stdout:
            if line.strip().startswith("password:"):
                password = line.split(":", 1)[1].strip()
            if line.startswith("Try:"):
                break
        subprocess.Popen(["cat"], stdin=mesh.stdout, stdout=subprocess.DEVNULL)
        edge = f"http://127.0.0.1:{ports['edge']}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{edge}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        admin = http("POST", f"{edge}/v1/auth/login", {"username": "admin", "password": password})[0]["accessToken"]
        # A plan that never limits, so the run measures the edge, not the limit.
        http("PUT", f"{edge}/v1/rate-limit-plans/bench", {"perMinute": 2000000000, "perHour": 2000000000,
                                                          "perDay": 2000000000}, token=admin)
        http("POST", f"{edge}/v1/users", {"username": "bench", "email": "bench@harshadelights.in",
                                          "password": "bench bench bench", "roles": ["viewer"],
                                          "rateLimitPlan": "bench"}, token=admin)
        token = http("POST", f"{edge}/v1/auth/login", {"username": "bench", "password": "bench bench bench"})[0]["accessToken"]
        yield edge, token, ports["customer"], children(mesh.pid)
    finally:
        mesh.send_signal(signal.SIGTERM)
        mesh.wait(timeout=60)


def through_edge(edge: str, token: str, pids: list, flags: list) -> dict:
    """(b): wrk against the edge's REST route, with the servers' CPU per request."""
    before = cpu_seconds(pids)
    out = subprocess.run(["wrk", *flags, "-H", f"Authorization: Bearer {token}", f"{edge}{PROFILE}"],
                         capture_output=True, text=True, check=True).stdout
    result = parse_wrk(out)
    result["cpu_us"] = (cpu_seconds(pids) - before) * 1e6 / max(result["requests"], 1)
    result["p99_ms"] = result["ms"].get("99")
    return result


PROFILE = "/v1/customers/CUST-0003/profile"


def telemetry(binary: Path, work: Path, flags: list, ratio: float, rounds: int) -> dict:
    """The edge's REST rate with tracing spans off (RUST_LOG=off), on
    (info, nothing exported), and on with OTLP export sampling `ratio`;
    the three interleaved `rounds` times, so drift on a shared machine
    falls on each alike. Costs compare the median rates."""
    collector = DiscardingCollector()
    runs = {
        "spans_off": {"RUST_LOG": "off"},
        "spans_on": {"RUST_LOG": "info"},
        "otlp_export": {"RUST_LOG": "info", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(ratio)},
    }
    samples = {name: [] for name in runs}
    try:
        for _ in range(rounds):
            for name, env in runs.items():
                with bench_mesh(binary, work, env) as (edge, token, _, pids):
                    http("GET", f"{edge}{PROFILE}", token=token)
                    samples[name].append(through_edge(edge, token, pids, flags))
    finally:
        collector.close()

    def median(name, key):
        values = sorted(run[key] for run in samples[name])
        return values[len(values) // 2]

    results = {name: {"rps": [run["rps"] for run in runs_of], "median_rps": median(name, "rps"),
                      "median_cpu_us": round(median(name, "cpu_us"), 1),
                      "median_p99_ms": median(name, "p99_ms")}
               for name, runs_of in samples.items()}
    base = results["spans_off"]["median_rps"]
    results["cost_spans_on"] = round(1 - results["spans_on"]["median_rps"] / base, 3)
    results["cost_otlp_export"] = round(1 - results["otlp_export"]["median_rps"] / base, 3)
    results["sample_ratio"] = ratio
    results["otlp_exports_received"] = collector.exports
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--telemetry", action="store_true",
                        help="compare the edge's rate with spans off, on, and exported over OTLP (sampled)")
    parser.add_argument("--sample", type=float, default=0.1, help="the sampling ratio of the OTLP run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the telemetry comparison")
    args = parser.parse_args()
    binary = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "harsha"
    for tool in ("h2load", "wrk", "nginx"):
        assert shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists(), f"{tool} is missing"
    work = Path(tempfile.mkdtemp(prefix="harsha-bench-"))
    flags = ["-t2", f"-c{args.connections}", f"-d{args.seconds}s", "--latency"]
    nginx = None
    try:
        if args.telemetry:
            print(json.dumps(telemetry(binary, work, flags, args.sample, args.rounds), indent=2))
            return
        ports = {name: free_port() for name in ("nginx", "origin")}
        with bench_mesh(binary, work, {}) as (edge, token, customer_port, pids):
            body, _ = http("GET", f"{edge}{PROFILE}", token=token)
            size = len(json.dumps(body, separators=(",", ":")))

            # (a) gRPC straight to the service.
            message = b"\x0a" + bytes([len("CUST-0003")]) + b"CUST-0003"
            frame = work / "request.bin"
            frame.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
            before = cpu_seconds(pids)
            h2 = subprocess.run(["h2load", "-D", str(args.seconds), "-c", str(args.connections), "-m", "1", "-t", "2",
                                 "-H", "content-type: application/grpc", "-H", "te: trailers",
                                 "-H", f"authorization: Bearer {token}", "-d", str(frame),
                                 f"http://127.0.0.1:{customer_port}/harsha.customer.v1.CustomerService/ResolveCustomerProfile"],
                                capture_output=True, text=True, check=True).stdout
            direct = parse_h2load(h2)
            direct["cpu_us"] = (cpu_seconds(pids) - before) * 1e6 / max(direct["requests"], 1)

            # (b) REST through the edge.
            through = through_edge(edge, token, pids, flags)

        # (c) nginx with a body of the same size.
        (work / "www").mkdir()
        (work / "www" / "profile.json").write_text("x" * size)
        (work / "logs").mkdir()
        (work / "nginx.conf").write_text(f"""
user root;
worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/logs/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 100000;
  upstream origin {{ server 127.0.0.1:{ports['origin']}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{ports['origin']};
    location / {{ root {work}/www; default_type application/json; }}
  }}
  server {{
    listen 127.0.0.1:{ports['nginx']};
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
        nginx = subprocess.Popen(["nginx", "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        nginx_pids = children(nginx.pid)
        before = cpu_seconds(nginx_pids)
        out = subprocess.run(["wrk", *flags, f"http://127.0.0.1:{ports['nginx']}/profile.json"],
                             capture_output=True, text=True, check=True).stdout
        reference = parse_wrk(out)
        reference["cpu_us"] = (cpu_seconds(nginx_pids) - before) * 1e6 / max(reference["requests"], 1)

        print(json.dumps({"body_bytes": size, "connections": args.connections, "seconds": args.seconds,
                          "direct_grpc": direct, "edge_rest": through, "nginx": reference,
                          "edge_vs_nginx": round(through["rps"] / reference["rps"], 3)}, indent=2))
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
