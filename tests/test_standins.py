"""The stand-in interface packages match upstream and never shadow the real packages.

tests/fixtures/upstream holds the upstream definitions (MAVROS 2.x mavros_msgs, ROS 2
geographic_msgs) with comments removed; every stand-in type must match its record
field for field and constant for constant. The CMake logic is run for real: with a
real package on the prefix path the stand-in installs nothing and removes what an
earlier stand-in build left behind.
"""
import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from rosidl_adapter.parser import parse_message_string, parse_service_string

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "src" / "standins"
UPSTREAM = Path(__file__).resolve().parent / "fixtures" / "upstream"


def standin_files():
    return sorted(p for p in STANDINS.glob("*/*/*") if p.suffix in (".msg", ".srv"))


def parsed(package: str, path_or_text, name: str, kind: str):
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    if kind == "msg":
        return [parse_message_string(package, name, text)]
    spec = parse_service_string(package, name, text)
    return [spec.request, spec.response]


def shape(spec):
    return ([(str(f.type), f.name, f.default_value) for f in spec.fields],
            [(c.type, c.name, c.value) for c in spec.constants])


@pytest.mark.parametrize("path", standin_files(), ids=lambda p: f"{p.parts[-3]}/{p.stem}")
def test_standin_matches_upstream_field_for_field_and_constant_for_constant(path):
    package, kind, name = path.parts[-3], path.suffix[1:], path.stem
    record = UPSTREAM / f"{package}.{name}.{kind}"
    assert record.exists(), f"{package}/{kind}/{name} has no upstream record: a stand-in holds only upstream types"
    ours = [shape(s) for s in parsed(package, path, name, kind)]
    upstream = [shape(s) for s in parsed(package, record, name, kind)]
    assert ours == upstream


@pytest.mark.parametrize("package", ["mavros_msgs", "geographic_msgs"])
def test_cmake_generates_exactly_the_files_present(package):
    listed = set(re.findall(r'"((?:msg|srv)/\w+\.(?:msg|srv))"', (STANDINS / package / "CMakeLists.txt").read_text()))
    present = {f"{p.parent.name}/{p.name}" for p in (STANDINS / package).glob("*/*") if p.suffix in (".msg", ".srv")}
    assert listed == present


@pytest.mark.parametrize("path", standin_files(), ids=lambda p: f"{p.parts[-3]}/{p.stem}")
def test_the_built_python_type_has_the_same_fields(path):
    package, kind, name = path.parts[-3], path.suffix[1:], path.stem
    module = importlib.import_module(f"{package}.{kind}")
    built = getattr(module, name)
    types = [built] if kind == "msg" else [built.Request, built.Response]
    for spec, cls in zip(parsed(package, path, name, kind), types):
        assert list(cls.get_fields_and_field_types()) == [f.name for f in spec.fields]


# --------------------------------------------------------------- CMake logic
cmake = shutil.which("cmake")


def configure(package: str, build: Path, install: Path, prefix_path: list[Path]):
    env = dict(os.environ)
    env["CMAKE_PREFIX_PATH"] = os.pathsep.join([str(p) for p in prefix_path] + [os.environ["VIRTUAL_ENV"]])
    env["AMENT_PREFIX_PATH"] = env["CMAKE_PREFIX_PATH"]
    result = subprocess.run(
        [cmake, "-S", str(STANDINS / package), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={install}",
         "-DBUILD_TESTING=OFF"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fake_real_package(prefix: Path, package: str) -> Path:
    share = prefix / "share" / package
    share.mkdir(parents=True)
    (share / "package.xml").write_text(f"<package format='3'><name>{package}</name></package>\n")
    return prefix


@pytest.mark.skipif(cmake is None, reason="cmake is not installed")
def test_with_the_real_package_installed_the_standin_installs_nothing(tmp_path):
    real = fake_real_package(tmp_path / "opt_ros", "geographic_msgs")
    out = configure("geographic_msgs", tmp_path / "build", tmp_path / "install", [real])
    assert "the real package is installed" in out
    subprocess.run([cmake, "--install", str(tmp_path / "build")], check=True, capture_output=True)
    assert not (tmp_path / "install" / "share" / "geographic_msgs").exists()
    assert not list((tmp_path / "install").rglob("*geographic_msgs*"))


@pytest.mark.skipif(cmake is None, reason="cmake is not installed")
def test_an_earlier_standin_install_is_removed_once_the_real_package_appears(tmp_path):
    install = tmp_path / "install"
    share = install / "share" / "geographic_msgs"
    share.mkdir(parents=True)
    (share / "dfr_standin").write_text("stand-in\n")
    python = install / "local" / "lib" / "python3.11" / "dist-packages" / "geographic_msgs"
    python.mkdir(parents=True)
    index = install / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "geographic_msgs").write_text("")
    real = fake_real_package(tmp_path / "opt_ros", "geographic_msgs")
    configure("geographic_msgs", tmp_path / "build", install, [real])
    subprocess.run([cmake, "--install", str(tmp_path / "build")], check=True, capture_output=True)
    assert not share.exists() and not python.exists() and not (index / "geographic_msgs").exists()


@pytest.mark.skipif(cmake is None, reason="cmake is not installed")
def test_a_standin_on_the_prefix_path_does_not_count_as_the_real_package(tmp_path):
    earlier = tmp_path / "earlier"
    share = fake_real_package(earlier, "geographic_msgs") / "share" / "geographic_msgs"
    (share / "dfr_standin").write_text("stand-in\n")
    out = configure("geographic_msgs", tmp_path / "build", tmp_path / "install", [earlier])
    assert "building the stand-in" in out


def test_what_the_workspace_resolves_is_the_real_package_or_else_the_standin():
    """Where the real package is installed it must win; elsewhere the workspace's stand-in is used."""
    from ament_index_python.packages import get_package_share_directory
    workspace_install = REPO / "install"
    for package in ("mavros_msgs", "geographic_msgs"):
        share = Path(get_package_share_directory(package))
        if (share / "dfr_standin").exists():
            assert workspace_install in share.parents
            others = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
                      if p and workspace_install not in Path(p).parents and Path(p) != workspace_install]
            assert not any((p / "share" / package / "package.xml").exists() for p in others), \
                f"a real {package} is installed but the stand-in shadows it"
        else:
            assert workspace_install not in share.parents, f"a {package} without the stand-in marker in the workspace"
