"""The wheel the image is built from (`make wheel`, then the Containerfile installs it): built
from this source the way the Makefile builds it, it carries every module and the `cloudkit`
entry point, installs into a fresh virtualenv, and `cloudkit operator` from there runs far
enough to reject an empty configuration (exit 2, one line per problem, no traceback).

Built from a copy of the sources (setuptools writes build/ beside them) and installed offline
from uv's cache, which `make install` filled with the same dependencies.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[3]
UV = Path(sys.executable).parent / "uv"
TIMEOUT_S = 120


def _wheel_target() -> list[str]:
    """The recipe of the Makefile's `wheel` target, one command per line."""
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^wheel:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert match, "the Makefile has no wheel target"
    return [line.strip() for line in match.group(1).splitlines()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [str(UV), "build", "--offline", "--wheel", "--out-dir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    (built,) = out.glob("*.whl")
    return built


def test_the_makefile_and_the_containerfile_agree_on_the_wheel(wheel: Path) -> None:
    recipe = _wheel_target()
    assert any("uv build --wheel --out-dir dist" in line for line in recipe), recipe
    containerfile = (ROOT / "Containerfile").read_text()
    copied = re.findall(r"^COPY\s+(\S+)\s", containerfile, re.MULTILINE)
    assert copied and all(fnmatch.fnmatch(f"dist/{wheel.name}", c) for c in copied), copied
    assert 'ENTRYPOINT ["cloudkit"]' in containerfile
    assert 'CMD ["operator"]' in containerfile


def test_the_wheel_carries_every_module_and_the_entry_point(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
        (entry_points,) = [n for n in files if n.endswith(".dist-info/entry_points.txt")]
        scripts = configparser.ConfigParser()
        scripts.read_string(archive.read(entry_points).decode())
    modules = {
        str(p.relative_to(ROOT / "src"))
        for p in (ROOT / "src" / "cloudkit").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules - files == set()
    assert scripts["console_scripts"]["cloudkit"] == "cloudkit.cli:main"
    assert "cloudkit/py.typed" in files


def test_cloudkit_operator_from_the_installed_wheel_rejects_an_empty_configuration(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = [str(UV), "pip", "install", "-q", "--offline", "--python", python, str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=TIMEOUT_S)
    probe = "import cloudkit.operator.main as m; print(m.__file__)"
    where = subprocess.run(
        [python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's files, not the checkout

    # Nothing configured: no CLOUDKIT_* variable, no kubeconfig, an empty HOME.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    finished = subprocess.run(
        [str(venv / "bin" / "cloudkit"), "operator"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT_S,
    )
    lines = finished.stderr.splitlines()
    assert finished.returncode == 2, finished.stderr
    assert lines and all(line.startswith("cloudkit operator: CLOUDKIT_") for line in lines), lines
    assert "Traceback" not in finished.stdout + finished.stderr
