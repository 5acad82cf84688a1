"""Storage initializer throughput against boto3, as JSON.

    .venv/bin/python bench/storage.py [--size-mib 1024] [--repeat 3]

Starts MinIO on loopback (tests/modeldeploy_testing/objectstore.py, binary from e2e/minio.sh),
uploads one object of ``--size-mib`` random bytes and pulls it alternately with
``modeldeploy-storage-initializer`` (obstore) and with boto3's ``download_file`` (s3transfer, 10
threads), each as a fresh process timed end to end (start, connect, download, fsync-less close).
boto3 cannot live in the project's venv (botocore pins python-dateutil<3, kubernetes 37 needs >=3),
so it runs from its own venv, created once under ~/.cache/modeldeploy/bench-boto3-<version>/.
Prints the JSON and writes it to bench/results/storage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from modeldeploy_testing.objectstore import start_s3_server  # noqa: E402

BOTO3 = "boto3==1.44.5"
MIB = 1024 * 1024
BUCKET, KEY = "bench", "model/weights.bin"
BOTO3_SCRIPT = """
import sys, boto3
from botocore.config import Config
endpoint, region, key_id, secret, bucket, key, dest = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=key_id,
                  aws_secret_access_key=secret, config=Config(s3={"addressing_style": "path"}))
s3.download_file(bucket, key, dest)
"""


def boto3_python() -> Path:
    cache = Path(os.environ.get("MODELDEPLOY_CACHE") or Path.home() / ".cache" / "modeldeploy")
    venv = cache / f"bench-{BOTO3.replace('==', '-')}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", BOTO3], check=True
        )
    return python


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, out


def reported_rate(stdout: str) -> float:
    """The initializer's own figure for the body alone (its last progress line: '..., N MiB/s')."""
    lines = [line for line in stdout.splitlines() if line.endswith(" MiB/s")]
    return float(lines[-1].rsplit(", ", 1)[1].split()[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "storage.json")
    args = p.parse_args()

    python = boto3_python()
    initializer = str(Path(sys.executable).with_name("modeldeploy-storage-initializer"))
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp_name:
        tmp = Path(tmp_name)
        server = start_s3_server(tmp)
        try:
            server.create_bucket(BUCKET)
            blob = tmp / "blob"
            with open(blob, "wb") as f:
                for _ in range(args.size_mib):
                    f.write(os.urandom(MIB))
            server.put_file(BUCKET, KEY, blob)
            blob.unlink()
            size = args.size_mib * MIB
            env = {
                "PATH": os.environ["PATH"],
                **server.env(),
                "MODELDEPLOY_TERMINATION_LOG": str(tmp / "term"),
            }
            seconds: dict[str, list[float]] = {"initializer": [], "boto3": []}
            body_rates: list[float] = []
            initializer_cmd = [initializer, f"s3://{BUCKET}/{KEY}", str(tmp / "models" / "m")]
            initializer_cmd += ["--layout", "triton", "--version-dir", "1"]
            target = tmp / "boto3.bin"
            boto_args = [
                server.endpoint_url,
                server.region,
                server.access_key,
                server.secret_key,
                BUCKET,
                KEY,
            ]
            for _ in range(args.repeat):
                took, out = timed(initializer_cmd, env)
                seconds["initializer"].append(took)
                body_rates.append(reported_rate(out))
                shutil.rmtree(tmp / "models")
                seconds["boto3"].append(
                    timed([str(python), "-c", BOTO3_SCRIPT, *boto_args, str(target)], env)[0]
                )
                target.unlink()
        finally:
            server.stop()

    rate = {name: size / MIB / statistics.median(s) for name, s in seconds.items()}
    result = {
        "object_mib": args.size_mib,
        "repeat": args.repeat,
        "server": "MinIO on 127.0.0.1 (same machine)",
        "initializer": {
            "library": "obstore 0.12.1",
            "seconds": seconds["initializer"],
            "mib_per_s": rate["initializer"],
            "body_only_mib_per_s": statistics.median(body_rates),
        },
        "boto3": {
            "library": BOTO3 + " download_file",
            "seconds": seconds["boto3"],
            "mib_per_s": rate["boto3"],
        },
        "ratio_initializer_to_boto3": rate["initializer"] / rate["boto3"],
        "measured": "median wall time of a fresh process each, alternating",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": os.getloadavg()[0],  # other work on the machine slows both sides
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
