import subprocess
import sys


def test_doctor_runs_and_self_tests():
    run = subprocess.run([sys.executable, "-m", "cubeops.doctor"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cpu: self-test max error" in run.stdout and "OK" in run.stdout


def test_min_nvrtc_table():
    from cubeops import _native

    assert _native.min_nvrtc(120) == (12, 8)  # RTX 5090 (sm_120a)
    assert _native.min_nvrtc(90) == (12, 0)
    assert _native.min_nvrtc(75) == (10, 0)
