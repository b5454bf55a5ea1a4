"""The GPU machine's soak, DDP and A/B scripts (tests/gpu/) run small on the CPU here, so they
cannot rot between GPU sessions. Their GPU figures are in docs/reliability.md (soak, DDP) and
docs/benchmarks.md (A/B)."""

import os
import subprocess
import sys
from pathlib import Path

GPU_DIR = Path(__file__).resolve().parents[1] / "gpu"


def run(args, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(GPU_DIR.parent / "python"), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_soak_smoke_on_cpu():
    r = run([str(GPU_DIR / "soak.py"), "--device", "cpu", "--calls", "300", "--every", "100"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "300 calls in" in r.stdout and "PASS" in r.stdout, r.stdout
    assert "rss_mib" in r.stdout


def test_ddp_two_cpu_processes():
    r = run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
             str(GPU_DIR / "ddp_point_sample.py"), "--device", "cpu"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rank 1/2 on cpu" in r.stdout and "DDP on 2 CPU processes: PASS" in r.stdout, r.stdout


def test_ab_wheels_smoke_on_cpu():
    """The A/B of two installs, here the installed package against itself, tiny and on the CPU."""
    import cubeops

    site = str(Path(cubeops.__file__).resolve().parents[1])
    r = run([str(GPU_DIR / "ab_wheels.py"), site, site, "--device", "cpu", "--quick"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "new f+b" in r.stdout and "det new" in r.stdout and "A/B done" in r.stdout, r.stdout
