# Source this to work in the project's environment: the venv with ROS 2 Jazzy from
# PyPI, the library paths its C libraries need, and the built workspace if any.
# Usage: source .ci/env.bash   (the Makefile does this for every target)
_dfr_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_dfr_venv=${DFR_VENV:-$_dfr_root/.venv}
if [[ ! -x $_dfr_venv/bin/python ]]; then
  echo "env.bash: no venv at $_dfr_venv; run 'make venv' first" >&2
  return 1 2>/dev/null || exit 1
fi
export VIRTUAL_ENV=$_dfr_venv
case ":$PATH:" in *":$_dfr_venv/bin:"*) ;; *) export PATH=$_dfr_venv/bin:$PATH ;; esac
_dfr_site=$(echo "$_dfr_venv"/lib/python3.*/site-packages)
_dfr_libs=$_dfr_venv/lib
for _d in "$_dfr_site"/ros_*.libs; do [[ -d $_d ]] && _dfr_libs=$_d:$_dfr_libs; done
export LD_LIBRARY_PATH=$_dfr_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The wheels' bootstrapper would otherwise re-execute every interpreter to do the above.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export AMENT_PREFIX_PATH=$_dfr_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
export CMAKE_PREFIX_PATH=$_dfr_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
export ROS_VERSION=2 ROS_PYTHON_VERSION=3 ROS_DISTRO=jazzy
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
if [[ -f $_dfr_root/install/setup.bash ]]; then
  # shellcheck disable=SC1091
  source "$_dfr_root/install/setup.bash"
fi
unset _dfr_root _dfr_venv _dfr_site _dfr_libs _d
