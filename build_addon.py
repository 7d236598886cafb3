"""Build the Blender extension zip: dist/worldsculpt-<version>.zip.

The zip holds the manifest and modules of ``blender_addon/``, a real copy of ``protocol/`` (in the
repository ``blender_addon/protocol`` is a symlink), and the pyzmq + msgpack wheels for every Python
the supported Blenders embed (``PYTHON_VERSIONS``) under ``./wheels/``, listed in the manifest's
``wheels = [...]`` as the extension manual asks; Blender installs the ones that match it. The version
comes from ``backend/__init__.py`` (the project's one version source), the Blender bounds from
``BLENDER_VERSIONS``. Wheels are downloaded once with pip into ``build/wheels/<platform>/<python>/``.

    python build_addon.py                      # all four platforms
    python build_addon.py --platform current   # this machine only (what the tests use)
"""

from __future__ import annotations

import argparse
import platform as host
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
PROTOCOL = ROOT / "protocol"
REQUIREMENTS = ("pyzmq==27.3.0", "msgpack==1.2.4")  # the versions the backend and tests run with
# The Python each supported Blender embeds: 4.2 LTS to 5.0 CPython 3.11, 5.1 and newer CPython 3.13.
PYTHON_VERSIONS = ("3.11", "3.13")
# The oldest Blender the add-on runs on, and the first it is not yet known to run on (the manifest's
# blender_version_max is exclusive): the tests run the zip in bpy 4.2 and 5.1.
BLENDER_VERSIONS = ("4.2.0", "5.2.0")
VERSION_FILE = ROOT / "backend" / "__init__.py"

# Blender platform name -> pip --platform tags (pip also accepts older manylinux/macOS releases of each).
PLATFORMS: dict[str, tuple[str, ...]] = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64",),
    "macos-x64": ("macosx_11_0_x86_64",),
}


def current_platform() -> str:
    machine = host.machine().lower()
    arch = "arm64" if machine in ("arm64", "aarch64") else "x64"
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}[sys.platform]
    name = f"{system}-{arch}"
    if name not in PLATFORMS:
        raise ValueError(f"no wheels configured for this platform ({name}); choose from {sorted(PLATFORMS)}")
    return name


def project_version() -> str:
    """``__version__`` of backend/__init__.py, read as text (the add-on build never imports the backend)."""
    found = re.search(r'^__version__ = "([^"]+)"$', VERSION_FILE.read_text(), flags=re.M)
    if found is None:
        raise ValueError(f"{VERSION_FILE} has no `__version__ = \"...\"` line")
    return found.group(1)


def download_wheels(platform: str, python: str, cache: Path) -> list[Path]:
    """The platform's wheels for one Python, from the cache or fetched with `pip download` (binary, no deps)."""
    folder = cache / platform / python
    wanted = [req.replace("==", "-") for req in REQUIREMENTS]  # "pyzmq-27.3.0"
    found = [next(iter(sorted(folder.glob(f"{w}-*.whl"))), None) for w in wanted] if folder.exists() else []
    if found and all(found):
        return found  # type: ignore[return-value]
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
               "--python-version", python, "--implementation", "cp", "-d", str(folder)]
    for tag in PLATFORMS[platform]:
        command += ["--platform", tag]
    subprocess.run([*command, *REQUIREMENTS], check=True)
    return download_wheels(platform, python, cache)


def manifest_text(wheels: list[str], platforms: list[str], version: str = "0.0.0") -> str:
    """The source manifest with the version, Blender bounds, wheel list and platforms filled in."""
    text = (ADDON / "blender_manifest.toml").read_text()
    listing = f'version = "{version}"\n'
    listing += f'blender_version_min = "{BLENDER_VERSIONS[0]}"\nblender_version_max = "{BLENDER_VERSIONS[1]}"\n'
    listing += "wheels = [\n" + "".join(f'  "./wheels/{w}",\n' for w in wheels) + "]\n"
    listing += "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]\n"
    text, count = re.subn(r"^wheels = \[\]\n", listing, text, flags=re.M)
    if count != 1:
        raise ValueError("blender_manifest.toml must contain exactly one `wheels = []` line to fill in")
    tomllib.loads(text)  # fail here, not in Blender, if it stopped being TOML
    return text


def _source_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix in (".py", ".toml"))


def build(platforms: list[str], out_dir: Path = ROOT / "dist", cache: Path = ROOT / "build" / "wheels") -> Path:
    version = project_version()
    by_name = {w.name: w for p in platforms for py in PYTHON_VERSIONS  # abi3 and universal2 wheels are shared
               for w in download_wheels(p, py, cache)}
    wheels = [by_name[name] for name in sorted(by_name)]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"worldsculpt-{version}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("blender_manifest.toml", manifest_text([w.name for w in wheels], platforms, version))
        for path in _source_files(ADDON):
            rel = path.relative_to(ADDON)
            if rel.parts[0] != "protocol" and rel.name != "blender_manifest.toml":
                zf.write(path, rel.as_posix())
        for path in _source_files(PROTOCOL):  # the real files, never the symlink
            zf.write(path, ("protocol" / path.relative_to(PROTOCOL)).as_posix())
        for wheel in wheels:
            zf.write(wheel, f"wheels/{wheel.name}", compress_type=zipfile.ZIP_STORED)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", action="append", choices=[*PLATFORMS, "current", "all"],
                        help="platform(s) to bundle wheels for (repeatable; default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "wheels")
    args = parser.parse_args(argv)
    chosen = args.platform or ["all"]
    platforms = sorted({q for p in chosen for q in (PLATFORMS if p == "all" else
                                                    [current_platform() if p == "current" else p])})
    print(build(platforms, args.out, args.cache))


if __name__ == "__main__":
    main()
