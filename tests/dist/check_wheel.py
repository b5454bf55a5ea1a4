"""Checks the release wheel in dist/: one abi3 wheel for CPython >= 3.10, a manylinux tag no
newer than manylinux_2_28 that auditwheel confirms from the binary's symbol versions, the
package's files inside, an extension built from this source (every function the type stubs
declare is named in the binary: a stale build would lack the newest), and its size.
Usage: python tests/dist/check_wheel.py dist"""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

NEWEST_GLIBC = (2, 28)  # torch's own wheels need 2.28: ours must not ask for more
MAX_MIB = 10


def fail(message: str) -> None:
    print(f"FAIL: {message}")
    sys.exit(1)


def main(dist: Path) -> None:
    wheels = sorted(dist.glob("cubeops-*.whl"))
    sdists = sorted(dist.glob("cubeops-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        fail(f"expected one wheel and one sdist in {dist}, found {[p.name for p in wheels + sdists]}")
    wheel = wheels[0]
    tag = re.fullmatch(r"cubeops-[^-]+-cp310-abi3-(.+)\.whl", wheel.name)
    if tag is None:
        fail(f"{wheel.name}: not an abi3 wheel for cp310+")
    platforms = tag.group(1).split(".")
    glibcs = [tuple(map(int, m.groups())) for p in platforms if (m := re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", p))]
    if not glibcs or max(glibcs) > NEWEST_GLIBC:
        fail(f"{wheel.name}: platform tag {tag.group(1)} is not manylinux_2_28 or older")

    # auditwheel reads the symbol versions the extension needs and names the newest policy it fits.
    shown = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True)
    print(shown.stdout.strip())
    needed = re.search(r'consistent with\s+the\s+following\s+platform\s+tag:\s*"manylinux_(\d+)_(\d+)_x86_64"', shown.stdout)
    if shown.returncode != 0 or needed is None:
        fail(f"auditwheel show failed or named no manylinux tag:\n{shown.stdout}{shown.stderr}")
    if tuple(map(int, needed.groups())) > min(glibcs):
        fail(f"auditwheel says the binary needs manylinux_{needed.group(1)}_{needed.group(2)}, the tag claims {tag.group(1)}")

    names = zipfile.ZipFile(wheel).namelist()
    for must in ("cubeops/__init__.py", "cubeops/mmcv_compat.py", "cubeops/_native.pyi", "cubeops/py.typed"):
        if must not in names:
            fail(f"{wheel.name} lacks {must}")
    if not any(re.fullmatch(r"cubeops/_native\.abi3\.so", n) for n in names):
        fail(f"{wheel.name} lacks the extension module cubeops/_native.abi3.so")
    with zipfile.ZipFile(wheel) as zf:
        binary = zf.read("cubeops/_native.abi3.so")
        declared = re.findall(r"^def (\w+)\(", zf.read("cubeops/_native.pyi").decode(), re.MULTILINE)
    missing = [name for name in declared if name.encode() + b"\0" not in binary]
    if not declared or missing:
        fail(f"{wheel.name}: the extension does not define {missing or 'anything'} (a stale build?)")

    mib = wheel.stat().st_size / 2**20
    if mib > MAX_MIB:
        fail(f"{wheel.name} is {mib:.1f} MiB, over {MAX_MIB} MiB")
    print(f"OK: {wheel.name} ({mib:.1f} MiB; needs glibc >= {needed.group(1)}.{needed.group(2)}), sdist {sdists[0].name}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist"))
