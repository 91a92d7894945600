"""File scrubs end to end over HTTP: upload, answer, download; numbers per second.

Starts ``registry serve`` (one gunicorn worker) and one ``registry scrub-worker``
on 127.0.0.1 against a scratch database (SQLite file, or PostgreSQL database
``bench_scrub``), uploads a CSV of ``--rows`` distinct numbers (a tenth with a
consent on record would need the API per number; the list is strangers' numbers,
the common case of a wash), polls the job until it is done and downloads the
result, checking its SHA-256 against the job's. Prints each phase and the
numbers per second from the upload's first byte to the download's last.

    .venv/bin/python benchmarks/scrub.py --rows 100000 [--postgres]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import subprocess
import tempfile
import time
from pathlib import Path

from _common import BIN, Server, bench_env, drop_postgres, fresh_postgres, machine, registry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scrub-"))
    url = fresh_postgres("bench_scrub") if args.postgres else f"sqlite:///{tmp / 'r.sqlite3'}"
    env = {**bench_env(url), "REGISTRY_INSTANCE_PATH": str(tmp / "instance")}
    registry(env, "db", "upgrade")
    registry(env, "org", "create", "bench", "--name", "Bench Bank")
    registry(env, "sender", "create", "bench", "bench-cards", "--name", "Bench Cards",
             "--category", "finance")  # fmt: skip
    key = registry(env, "key", "create", "bench").stdout.strip().splitlines()[-1]
    path = tmp / "list.csv"
    with path.open("w") as fh:
        fh.write("phone\n")
        fh.writelines(f"+86139{i:08d}\n" for i in range(args.rows))
    server = Server(env, 1)
    worker = subprocess.Popen(
        [str(BIN / "registry"), "scrub-worker", "--interval", "0.05"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=3600)
        start = time.perf_counter()
        with path.open("rb") as fh:
            conn.request(
                "POST", "/api/v1/scrubs?sender=bench-cards&channel=sms", body=fh,
                headers={**headers, "Content-Type": "text/csv",
                         "Content-Length": str(path.stat().st_size)},
            )  # fmt: skip
            resp = conn.getresponse()
            job = json.loads(resp.read())
        assert resp.status == 202, job
        uploaded = time.perf_counter()
        while True:
            conn.request("GET", f"/api/v1/scrubs/{job['id']}", headers=headers)
            job = json.loads(conn.getresponse().read())
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert job["status"] == "done", job
        answered = time.perf_counter()
        conn.request("GET", f"/api/v1/scrubs/{job['id']}/result.csv", headers=headers)
        data = conn.getresponse().read()
        end = time.perf_counter()
        assert hashlib.sha256(data).hexdigest() == job["result_sha256"]
    finally:
        worker.terminate()
        worker.wait(30)
        server.stop()
        if args.postgres:
            drop_postgres("bench_scrub")
    total = end - start
    print(f"{'PostgreSQL' if args.postgres else 'SQLite'}, {args.rows} numbers; {machine()}")
    print(f"  upload (stream, hash, count, store)  {uploaded - start:7.2f} s")
    print(f"  answer (worker: check, log, result)  {answered - uploaded:7.2f} s"
          f"  = {args.rows / (answered - uploaded):,.0f} numbers/s")  # fmt: skip
    print(f"  download ({len(data) / 1e6:.1f} MB)              {end - answered:7.2f} s")
    print(
        f"  end to end                           {total:7.2f} s  = {args.rows / total:,.0f} numbers/s"
    )


if __name__ == "__main__":
    main()
