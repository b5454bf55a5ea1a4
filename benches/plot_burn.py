"""Plot of the Rust benchmark's table (benches/point_sample.rs writes point_sample_burn.csv):
cubeops' speed-up over burn's grid_sample_2d per case, forward and forward + backward, on a
log scale (burn's backward is a tensor-op composition, 7x .. 200x slower).

    python benches/plot_burn.py target/criterion/cubeops/point_sample_burn.csv --out docs/benchmarks
"""

import argparse
import csv
import os


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="point_sample_burn.csv of a `cargo bench ... --bench point_sample` run")
    parser.add_argument("--out", default="target/criterion/cubeops", help="directory for point_sample_burn.png")
    args = parser.parse_args(argv)
    with open(args.csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["fwd_speedup"] != "-" and r["fb_speedup"] != "-"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(8, 0.3 * len(rows)), 5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [float(r["fwd_speedup"]) for r in rows], width=0.4, label="forward")
    ax.bar([x + 0.2 for x in xs], [float(r["fb_speedup"]) for r in rows], width=0.4, label="forward+backward (Autodiff)")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r["case"] for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("speed-up over burn grid_sample_2d (x, log)")
    ax.set_title("cubeops::point_sample vs burn grid_sample_2d")
    ax.legend()
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "point_sample_burn.png")
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
