"""Build the Splunk app TA-stixbridge as ``.tgz`` and ``.spl`` from this repository.

Usage::

    python packaging/splunk/build.py                 # writes packaging/splunk/build/dist/TA-stixbridge-<v>.tgz/.spl
    python packaging/splunk/build.py --out /tmp/app  # another output folder

The script copies ``packaging/splunk/TA-stixbridge`` (the app's ``default/``, ``README/``, ``metadata/``,
views and the thin ``bin/stixbridge_sync.py``) and fills in the version. It builds a wheel of stixbridge
and installs it with its ``taxii``, ``splunk`` and ``trust`` extras into ``bin/lib`` for Splunk's Python 3.13. Only
pure-Python wheels are accepted, so the app runs on any CPU Splunk supports, and each library keeps its
``.dist-info``. Then it removes compiled files and script folders, sets file modes, and packs the folder.
The build fails when a dependency has no pure-Python wheel or a compiled file slipped in.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

APP_ID = "TA-stixbridge"
SPLUNK_PYTHON = "3.13"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TEMPLATE = HERE / APP_ID
SOURCE_FILES = ("pyproject.toml", "README.md", "core", "connectors")
"""What the stixbridge wheel is built from."""
COMPILED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".exe")


def project_version() -> str:
    """Return the stixbridge version written in ``core/__init__.py``."""
    text = (REPO / "core" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise SystemExit("cannot find __version__ in core/__init__.py")
    version = match.group(1)
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise SystemExit(f"version {version!r} is not MAJOR.MINOR.PATCH, which app.conf needs")
    return version


def build_number(version: str) -> int:
    """Return the ``[install] build`` integer, which must grow with each release: 1.2.3 gives 10203."""
    major, minor, patch = (int(part) for part in version.split("."))
    return major * 10000 + minor * 100 + patch


def copy_template(app: Path, version: str) -> None:
    """Copy the app files and fill in the version placeholders of ``app.conf``."""
    shutil.copytree(TEMPLATE, app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "local", ".*"))
    app_conf = app / "default" / "app.conf"
    text = app_conf.read_text(encoding="utf-8")
    text = text.replace("@VERSION@", version).replace("@BUILD@", str(build_number(version)))
    app_conf.write_text(text, encoding="utf-8")


def vendor_libraries(app: Path, work: Path) -> None:
    """Install stixbridge and its dependencies into ``bin/lib`` for Splunk's Python, pure wheels only."""
    # Build from a clean copy, so no stale build/ folder of the checkout ends up in the wheel.
    source = work / "source"
    source.mkdir()
    for name in SOURCE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    wheels = work / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source)])
    (wheel,) = wheels.glob("stixbridge-*.whl")

    lib = app / "bin" / "lib"
    run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--target", str(lib), "--no-compile",
            "--only-binary=:all:", "--platform", "any", "--implementation", "py", "--abi", "none",
            "--python-version", SPLUNK_PYTHON, "--ignore-requires-python",
            f"stixbridge[taxii,splunk,trust] @ {wheel.as_uri()}",
        ]
    )  # fmt: skip
    shutil.rmtree(lib / "bin", ignore_errors=True)

    # The dependencies' own test suites are not needed at run time.
    for tests in [*lib.glob("*/test"), *lib.glob("*/tests")]:
        if tests.is_dir():
            shutil.rmtree(tests)


def clean(app: Path) -> None:
    """Remove caches and check that no compiled file is left."""
    for cache in list(app.rglob("__pycache__")):
        shutil.rmtree(cache)
    compiled = [path for path in app.rglob("*") if path.suffix in COMPILED_SUFFIXES]
    if compiled:
        raise SystemExit(f"compiled files in the app, which must stay pure Python: {compiled[:5]}")
    if (app / "local").exists():
        raise SystemExit("the app must not ship a local/ folder")


def set_modes(app: Path) -> None:
    """Make folders 755, the input script 755 and every other file 644."""
    for path in [app, *app.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        elif path.parent == app / "bin" and path.suffix == ".py":
            path.chmod(0o755)
        else:
            path.chmod(0o644)


def pack(app: Path, dist: Path, version: str) -> list[Path]:
    """Write the app folder as ``<id>-<version>.tgz`` and the same bytes as ``.spl``."""
    dist.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted([app, *app.rglob("*")]):
            info = archive.gettarinfo(str(path), arcname=str(path.relative_to(app.parent)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if path.is_file():
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    outputs = []
    for suffix in (".tgz", ".spl"):
        target = dist / f"{APP_ID}-{version}{suffix}"
        target.write_bytes(buffer.getvalue())
        outputs.append(target)
    return outputs


def run(command: list[str]) -> None:
    """Run a build command, stopping the build with its output when it fails."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"command failed with status {completed.returncode}: {' '.join(command[:6])} ...")


def build(out: Path) -> list[Path]:
    """Build the app under ``out`` and return the package files."""
    version = project_version()
    app = out / APP_ID
    if app.exists():
        shutil.rmtree(app)
    out.mkdir(parents=True, exist_ok=True)

    copy_template(app, version)
    with tempfile.TemporaryDirectory(prefix="stixbridge-app-") as work:
        vendor_libraries(app, Path(work))
    clean(app)
    set_modes(app)
    return pack(app, out / "dist", version)


def main(argv: list[str] | None = None) -> int:
    """Build the app from the command line and print the package paths."""
    parser = argparse.ArgumentParser(description="Build the Splunk app TA-stixbridge (.tgz and .spl).")
    parser.add_argument(
        "--out", type=Path, default=HERE / "build", help="output folder (default packaging/splunk/build)"
    )
    args = parser.parse_args(argv)
    for path in build(args.out.resolve()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
