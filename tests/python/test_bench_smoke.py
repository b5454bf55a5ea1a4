"""The benchmark script runs (tiny shapes, CPU) and writes its table, CSV and plot, so it
cannot rot. Asserts nothing about speed."""

import csv
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benches" / "point_sample_torch.py"


def test_point_sample_bench_smoke(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--smoke", "--device", "cpu", "--dtypes", "float32,bfloat16",
                                      "--out", str(tmp_path)])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    assert "copy bandwidth" in out and "forward+backward nhwc: speed-up" in out
    with open(tmp_path / "point_sample.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2 * 2  # shapes x align_corners x layouts x dtypes
    assert {r["align_corners"] for r in rows} == {"False", "True"}
    assert all(float(r["fwd_ms"]) > 0 and float(r["speedup_both"]) > 0 for r in rows)
    assert (tmp_path / "point_sample.png").stat().st_size > 1000


def test_pointhead_bench_smoke(tmp_path, monkeypatch, capsys):
    """mmseg's PointHead, both point_samples, the three modes (tiny heads, CPU)."""
    script = SCRIPT.parent / "pointhead_torch.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--smoke", "--device", "cpu", "--out", str(tmp_path)])
    runpy.run_path(str(script), run_name="__main__")
    assert "geometric mean speed-up" in capsys.readouterr().out
    with open(tmp_path / "pointhead.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["mode"] for r in rows] == ["train f32", "train bf16 autocast", "inference f32"] * 2
    assert all(float(r["cubeops_ms"]) > 0 and float(r["mmcv_ms"]) > 0 for r in rows)
    assert (tmp_path / "pointhead.png").stat().st_size > 1000


def test_pointhead_profile_smoke(monkeypatch, capsys):
    """`--profile`: cProfile's functions and torch.profiler's host ops, per implementation."""
    script = SCRIPT.parent / "pointhead_torch.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--profile", "--smoke", "--device", "cpu", "--size", "1"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    for impl in ("cubeops", "mmcv"):
        assert f"== {impl}: (2, 16, 10, 14) train f32" in out and f"== {impl}: host ops" in out
    assert "_EagerPointSampleBackward" in out and "grid_sampler_2d" in out


def test_host_overhead_interleaved_smoke(monkeypatch, capsys):
    """The interleaved forward+backward comparison runs (CPU: the kernels' time, not the host's)."""
    script = SCRIPT.parent / "host_overhead.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--device", "cpu", "--rounds", "1"])
    runpy.run_path(str(script), run_name="__main__")
    lines = [line for line in capsys.readouterr().out.splitlines() if "grid_sample's)" in line]
    assert len(lines) == 3 and "(1.00x grid_sample's)" in lines[0]


def test_replot_and_rust_table_plot(tmp_path, monkeypatch):
    """`--replot` draws the PNG from a CSV, and benches/plot_burn.py plots the Rust
    benchmark's table (here the committed H100 ones)."""
    docs = SCRIPT.parents[1] / "docs" / "benchmarks"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--replot", str(docs / "point_sample.csv"), "--out", str(tmp_path)])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    plot_burn = SCRIPT.parent / "plot_burn.py"
    monkeypatch.setattr(sys, "argv", [str(plot_burn), str(docs / "point_sample_burn.csv"), "--out", str(tmp_path)])
    runpy.run_path(str(plot_burn), run_name="__main__")
    assert (tmp_path / "point_sample.png").stat().st_size > 1000
    assert (tmp_path / "point_sample_burn.png").stat().st_size > 1000


def test_ms_deform_attn_bench_smoke(tmp_path, monkeypatch, capsys):
    """MSDA: cubeops and the pure-PyTorch path on tiny shapes, both dtypes (CPU)."""
    script = SCRIPT.parent / "ms_deform_attn_torch.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--smoke", "--device", "cpu", "--out", str(tmp_path)])
    runpy.run_path(str(script), run_name="__main__")
    assert "wrote" in capsys.readouterr().out
    with open(tmp_path / "ms_deform_attn.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["shape"], r["dtype"]) for r in rows] == [
        (s, d) for s in ("tiny-2-levels", "tiny-bev") for d in ("float32", "bfloat16")
    ]
    assert all(float(r["cubeops_fb_ms"]) > 0 and float(r["speedup_fb_vs_pytorch"]) > 0 for r in rows)
