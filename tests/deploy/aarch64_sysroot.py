"""A Debian Bookworm arm64 root holding the endpoint's Raspberry Pi wheels, run through QEMU user-mode emulation.

Built once per dependency list under ``<repo>/.cache/aarch64-sysroot/<key>/`` and reused, as the model fixtures
are; ``ensure_sysroot()`` raises ``SysrootUnavailable`` where the tools or the network to build it are missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines.pi_wheels import PI_PLATFORMS, PI_PYTHON_VERSION, endpoint_requirements

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = REPO_ROOT / ".cache" / "aarch64-sysroot"
SUITE = "bookworm"  # Raspberry Pi OS 64-bit is Debian Bookworm: Python 3.11, glibc 2.36
DEBIAN_PACKAGES = ("python3.11",)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
QEMU = "qemu-aarch64-static"
QEMU_CPU = "cortex-a72"  # the Raspberry Pi 4's core
MARKER = "edgeloop-sysroot.json"
RECIPE_VERSION = 1  # bump when the build steps change, so old roots are not reused
TOOLS = {QEMU: "qemu-user-static", "debootstrap": "debootstrap", "dpkg-deb": "dpkg"}
_NETWORK_ERRORS = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name "
                   "resolution", "ConnectTimeout", "ReadTimeout", "ProxyError", "Network is unreachable")


class SysrootUnavailable(RuntimeError):
    """The tools or the network needed to build the root are missing here; the message says which."""


@dataclass(frozen=True)
class Aarch64Root:
    """A built root: ``command()`` runs its Python 3.11 as an aarch64 process on this machine."""

    path: Path

    @property
    def site(self) -> Path:
        return self.path / "opt" / "site"

    def command(self, *python_args: str) -> list[str]:
        return [QEMU, "-L", str(self.path), str(self.path / "usr/bin/python3.11"), *python_args]

    def env(self, *extra_paths: Path) -> dict[str, str]:
        """A clean environment: the Pi wheels first, then ``extra_paths`` (the repo), and no host packages."""
        pythonpath = os.pathsep.join(str(p) for p in (self.site, *extra_paths))
        return {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "PYTHONPATH": pythonpath,
                "PYTHONNOUSERSITE": "1", "QEMU_CPU": QEMU_CPU, "YOLO_OFFLINE": "1"}


def sysroot_key(requirements: list[str]) -> str:
    """Hash of everything that changes the root; it names the cache folder."""
    blob = json.dumps({"requirements": requirements, "platforms": PI_PLATFORMS, "python": PI_PYTHON_VERSION,
                       "suite": SUITE, "debian": DEBIAN_PACKAGES, "recipe": RECIPE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_sysroot(cache_root: Path = CACHE_ROOT) -> Aarch64Root:
    """The cached root for the current endpoint requirements, built first if missing (under a file lock)."""
    requirements = endpoint_requirements()
    key = sysroot_key(requirements)
    folder = cache_root / key
    cache_root.mkdir(parents=True, exist_ok=True)
    # parallel pytest runs share this cache: one builds, the others wait and reuse
    with open(cache_root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / MARKER).exists():
            _ensure_tools(need_build=False)
            if json.loads((folder / MARKER).read_text()).get("cores") != os.cpu_count():
                _write_cpuinfo(folder)  # the cache moved to a machine with another core count
        else:
            _ensure_tools(need_build=True)
            _build(folder, requirements)
    return Aarch64Root(folder)


def _ensure_tools(need_build: bool) -> None:
    needed = TOOLS if need_build else {QEMU: TOOLS[QEMU]}
    if need_build and os.geteuid() != 0:
        raise SysrootUnavailable("building the aarch64 root needs root (debootstrap); run as root once to cache it")
    missing = sorted({pkg for tool, pkg in needed.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SysrootUnavailable(f"{', '.join(missing)} not installed, and apt-get needs root")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=300", *missing]
    proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:  # stale package lists: refresh once
        subprocess.run(["apt-get", "update", "-qq", "-o", "DPkg::Lock::Timeout=300"], capture_output=True,
                       env=env, timeout=900)
        proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SysrootUnavailable(f"apt-get could not install {', '.join(missing)}: {_last_line(proc.stderr)}")
    log.info("installed %s", ", ".join(missing))


def debian_mirror(sources: list[Path] | None = None) -> str:
    """The first Debian mirror apt uses for the main Bookworm suite (one-line or deb822 lists)."""
    if sources is None:
        sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri, suites in _source_entries(text):
            if SUITE in suites and "security" not in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _source_entries(text: str) -> list[tuple[str, list[str]]]:
    entries = []
    for line in text.splitlines():  # one-line style: deb [options] URI suite components
        match = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if match:
            entries.append((match.group(1), [match.group(2)]))
    for block in re.split(r"\n\s*\n", text):  # deb822 style: Types / URIs / Suites fields
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", block, re.M))
        if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
            entries += [(uri, fields.get("Suites", "").split()) for uri in fields.get("URIs", "").split()]
    return entries


def _build(folder: Path, requirements: list[str]) -> None:
    """Build into a temporary folder and rename it into place, so a killed build never looks complete."""
    for stale in folder.parent.glob(f"{folder.name}.tmp-*"):  # left by a killed build; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    tmp = folder.parent / f"{folder.name}.tmp-{os.getpid()}"
    started = time.monotonic()
    try:
        mirror = debian_mirror()
        _probe(f"{mirror}/dists/{SUITE}/Release", "the Debian mirror")
        _debootstrap(tmp, mirror)
        debian_s = time.monotonic() - started
        _install_wheels(tmp / "opt" / "site", requirements)
        wheels_s = time.monotonic() - started - debian_s
        # empty stand-ins, so the guest's Python finds no host (x86) packages through qemu's -L fallback
        for shadow in ("usr/lib/python3/dist-packages", "usr/local/lib/python3.11/dist-packages"):
            (tmp / shadow).mkdir(parents=True, exist_ok=True)
        _write_cpuinfo(tmp)
        machine = _smoke(Aarch64Root(tmp))
        build_s = time.monotonic() - started
        steps_s = {"debian": round(debian_s, 1), "wheels": round(wheels_s, 1),
                   "smoke": round(build_s - debian_s - wheels_s, 1)}
        (tmp / MARKER).write_text(json.dumps({"requirements": requirements, "mirror": mirror, "machine": machine,
                                              "cores": os.cpu_count(), "build_s": round(build_s, 1),
                                              "steps_s": steps_s}))
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete folder from an older layout
        os.rename(tmp, folder)
        log.info("built the aarch64 root in %.1f s into %s", build_s, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _debootstrap(root: Path, mirror: str) -> None:
    # --foreign downloads and unpacks without running arm64 code; the second stage (maintainer scripts) is
    # not needed to run Python, so every downloaded package is simply unpacked.
    cmd = ["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase",
           f"--include={','.join(DEBIAN_PACKAGES)}", SUITE, str(root), mirror]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        _probe(f"{mirror}/dists/{SUITE}/Release", "the Debian mirror")
        raise RuntimeError(f"debootstrap failed: {proc.stderr[-2000:] or proc.stdout[-2000:]}")
    archives = root / "var" / "cache" / "apt" / "archives"
    for deb in sorted(archives.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, capture_output=True, timeout=300)
        deb.unlink()
    # what Python never reads: about 100 MB of package lists, docs, manuals and translations
    for unused in ("var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        shutil.rmtree(root / unused, ignore_errors=True)


def _install_wheels(site: Path, requirements: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-warn-script-location", "--target", str(site), "--only-binary=:all:",
           "--python-version", PI_PYTHON_VERSION, "--implementation", "cp",
           "--abi", f"cp{PI_PYTHON_VERSION.replace('.', '')}"]
    for platform in PI_PLATFORMS:
        cmd += ["--platform", platform]
    proc = subprocess.run(cmd + requirements, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        if any(marker in proc.stderr for marker in _NETWORK_ERRORS):
            raise SysrootUnavailable(f"PyPI is unreachable: {_last_line(proc.stderr)}")
        raise RuntimeError(f"pip could not install the Pi wheels: {proc.stderr[-2000:]}")


def _write_cpuinfo(root: Path) -> None:
    """An ARM /proc/cpuinfo for qemu's -L lookup: onnxruntime's cpuinfo segfaults on the host's x86 one."""
    core = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n")
    text = "\n".join(core.format(i=i) for i in range(os.cpu_count() or 1))
    text += "\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B (emulated)\n"
    path = root / "proc" / "cpuinfo"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"cpuinfo.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _smoke(root: Aarch64Root) -> str:
    """Import every native wheel as an aarch64 process (this also writes their bytecode into the root)."""
    code = "import platform, numpy, onnxruntime, cv2, cryptography.hazmat.bindings._rust, pydantic_core, yaml; " \
           "print(platform.machine())"
    proc = subprocess.run(root.command("-c", code), capture_output=True, text=True, env=root.env(), timeout=300)
    machine = proc.stdout.strip()
    if proc.returncode != 0 or machine != "aarch64":
        raise RuntimeError(f"the aarch64 root does not import its wheels (exit {proc.returncode}, "
                           f"machine {machine!r}): {proc.stderr[-2000:]}")
    return machine


def _probe(url: str, what: str) -> None:
    """Raise SysrootUnavailable when ``url`` cannot be reached at all (an HTTP error still means reachable)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15):
            pass
    except urllib.error.HTTPError:
        return
    except OSError as exc:
        raise SysrootUnavailable(f"{what} is unreachable ({url}): {exc}") from None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
