"""HTTP throughput under load from a C load generator: `wrk` (Debian package) with a Lua script
that rotates distinct questions, so the client costs the server's cores almost nothing.

Starts `semsearch serve` on the index (a new server each run: an empty query cache), runs
`wrk --latency` for a fixed time with N connections, and reads the server's own CPU time from
/proc before and after, giving the server's CPU per request under load beside requests/s and
latency. The questions are ViQuAD's and ViNewsQA's dev questions, distinct, each wrk thread
starting at its own offset; runs stay short enough that no question is asked twice.

    python bench/wrk_load.py [--index var/eval/viquad] [--clients 8] [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import urllib.parse
from pathlib import Path

from figures import spread
from http_load import free_port, start_server
from soak import memory_kib, worker_pids

ROOT = Path(__file__).resolve().parent.parent

EVAL = ROOT.parent / "shared" / "eval"
TICKS = os.sysconf("SC_CLK_TCK")

LUA = """
local paths = {%s}
local position = 0
function setup(thread)
  thread:set("offset", (thread_count or 0) * %d)
  thread_count = (thread_count or 0) + 1
end
function init(args)
  position = offset or 0
end
function request()
  position = position + 1
  return wrk.format("GET", paths[(position - 1) %% #paths + 1])
end
"""


def question_paths(mode: str) -> list[str]:
    questions: dict[str, None] = {}
    for name in ("viquad", "vinewsqa"):
        for line in (EVAL / name / "queries_dev.jsonl").read_text(encoding="utf-8").splitlines():
            questions[json.loads(line)["text"].strip()] = None
    return ["/api/search?" + urllib.parse.urlencode({"q": q, "k": 10, "mode": mode}) for q in questions]


def lua_script(paths: list[str], threads: int, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "questions.lua"
    quoted = ",".join(json.dumps(p) for p in paths)  # JSON strings of ASCII are valid Lua strings
    script.write_text(LUA % (quoted, len(paths) // threads))
    return script


def server_cpu_seconds(root_pid: int) -> float:
    """utime + stime of the server process and its workers."""
    total = 0.0
    for pid in [root_pid, *worker_pids(root_pid)]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port: int, script: Path, clients: int, threads: int, seconds: int) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests": requests,
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": to_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)),
        "p99": to_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)),
        "client_cores": client_cpu / seconds,
        "errors": (int(errors.group(1)) if errors else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "eval" / "viquad")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, help="server processes (default: the server's own)")
    parser.add_argument("--threads", type=int, default=4, help="threads per server process")
    parser.add_argument("--mode", default="hybrid")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")

    paths = question_paths(args.mode)
    wrk_threads = 2
    script = lua_script(paths, wrk_threads, ROOT / "var" / "bench" / "wrk")
    runs = []
    for _ in range(args.repeats):
        port = free_port()
        server = start_server(args.index, port, args.workers, args.threads)
        try:
            before = server_cpu_seconds(server.pid)
            result = run_wrk(port, script, args.clients, wrk_threads, args.seconds)
            result["cpu_ms"] = (server_cpu_seconds(server.pid) - before) / max(result["requests"], 1) * 1000
            result["pss_mb"] = max(memory_kib(pid)[1] for pid in worker_pids(server.pid)) / 1024
            runs.append(result)
        finally:
            server.terminate()
            server.wait(timeout=30)
        if result["requests"] > len(paths):
            print(f"warning: {result['requests']} requests > {len(paths)} distinct questions", file=sys.stderr)
    cores = os.cpu_count() or 1
    print(
        f"index {args.index}, {args.clients} connections, {args.seconds} s per run, {args.repeats} runs "
        f"(min / median / max), {len(paths)} distinct questions, {cores} cores"
    )
    print(
        "| requests/s | p50 ms | p99 ms | server CPU ms per request "
        "| wrk's own cores | largest worker PSS MB | errors |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {spread([r['rate'] for r in runs])} "
        f"| {spread([r['p50'] for r in runs])} | "
        f"{spread([r['p99'] for r in runs])} | {spread([r['cpu_ms'] for r in runs])} "
        f"| {spread([r['client_cores'] for r in runs], 2)} | "
        f"{spread([r['pss_mb'] for r in runs], 0)} | {sum(r['errors'] for r in runs)} |"
    )
    median_cpu = statistics.median(r["cpu_ms"] for r in runs)
    print(
        f"\nbound from the server's own CPU per request: {cores} cores / {median_cpu:.1f} ms = "
        f"{cores * 1000 / median_cpu:.0f} requests/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
