"""Host side of the GIMP tests: find the GIMP chroot, mount what it needs, run GIMP in it.

GIMP 3 runs in a Debian trixie chroot built by ``scripts/gimp-chroot`` (CI builds it;
``$LOWLIGHT_GIMP_CHROOT`` points at an existing one). The project, its virtual
environment, the venv's base interpreter and the tests' temporary folder are bind-mounted
at the same paths inside, so the plug-in can run the project's Python (bridge mode) or
import its ``worker`` package (direct mode), and the worker's ipc socket, in the shared
temporary folder, is reachable from both sides.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gimp-chroot"
GIMP_BATCH = ["gimp-console-3.0", "-i", "-n", "-d", "-f",
              "--batch-interpreter=python-fu-eval"]


def chroot_root() -> Path:
    return Path(os.environ.get("LOWLIGHT_GIMP_CHROOT") or REPO / ".cache" / "gimp-chroot")


def unavailable_reason() -> str | None:
    """Why the GIMP tests cannot run here, or None when they can."""
    root = chroot_root()
    if sys.platform != "linux":
        return "the GIMP tests run GIMP 3 in a Debian chroot: Linux only"
    if os.geteuid() != 0:
        return "the GIMP tests need root (chroot and bind mounts)"
    if (root / ".lowlight-ready").is_file():
        return None
    failed = Path(str(root) + ".failed")
    if failed.is_file():
        return (f"the GIMP chroot could not be built: {failed.read_text().strip()} "
                "(scripts/gimp-chroot)")
    if shutil.which("debootstrap") is None:
        return (f"no GIMP chroot at {root} and debootstrap is not installed "
                "(apt-get install debootstrap, then sudo scripts/gimp-chroot)")
    return (f"no GIMP chroot at {root}: build it with `sudo scripts/gimp-chroot` "
            "(or point LOWLIGHT_GIMP_CHROOT at one)")


def _python_binds() -> list[Path]:
    """What the project's Python needs inside the chroot: the venv and its base."""
    paths = [Path(sys.prefix)]
    base = Path(sys.base_prefix)
    if base not in (Path("/usr"), Path("/")):
        paths.append(base)
    else:  # a system Python: bind its interpreter and standard library, never /usr itself
        paths += [Path(os.path.realpath(sys.executable)),
                  Path(sysconfig.get_paths()["stdlib"])]
        libdir = sysconfig.get_config_var("LIBDIR")
        shared = sysconfig.get_config_var("LDLIBRARY")
        if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and shared:
            paths.append(Path(libdir) / shared)
    return paths


def _minimal(paths: Sequence[Path]) -> list[Path]:
    """``paths`` resolved, without those inside another one."""
    resolved = sorted({Path(os.path.realpath(p)) for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for p in resolved:
        if not any(p == k or k in p.parents for k in kept):
            kept.append(p)
    return kept


class GimpChroot:
    """The mounted chroot; ``run`` executes a command in it with a clean environment."""

    def __init__(self, extra_dirs: Sequence[Path]) -> None:
        self.root = chroot_root()
        self.binds = _minimal([REPO, *_python_binds(), *extra_dirs])
        self.version = (self.root / ".lowlight-ready").read_text().strip()

    def mount(self) -> None:
        subprocess.run([str(SCRIPT), "mount", *map(str, self.binds)], check=True,
                       env={**os.environ, "LOWLIGHT_GIMP_CHROOT": str(self.root)})

    def umount(self) -> None:
        subprocess.run([str(SCRIPT), "umount"], check=False,
                       env={**os.environ, "LOWLIGHT_GIMP_CHROOT": str(self.root)})

    def run(self, argv: Sequence[str], env: Mapping[str, str], *, timeout: float = 300,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        command = ["nice", "-n", "10", "chroot", str(self.root), "env", "-i",
                   *[f"{k}={v}" for k, v in {**base, **env}.items()], *argv]
        out = run_group(command, timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed with {out.returncode}:\n"
                                 f"{out.stdout}\n{out.stderr}")
        return out

    def gimp_batch(self, code: str, env: Mapping[str, str], *,
                   timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run([*GIMP_BATCH, "-b", code, "--quit"], env, timeout=timeout)


def run_group(command: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` in a process group of its own that is killed whole on a timeout.

    ``subprocess.run`` kills only its direct child when the time is up; under
    ``xvfb-run`` that leaves Xvfb, the test script and GIMP running in the chroot, which
    then keep its bind mounts busy. Here the child starts a new session, and a timeout
    kills every process in it before :class:`subprocess.TimeoutExpired` is raised (and
    before any other exception, such as Ctrl-C, goes on: the new session does not get it).
    """
    def kill_group() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            kill_group()
            stdout, stderr = proc.communicate()
            raise subprocess.TimeoutExpired(proc.args, timeout, stdout, stderr) from exc
        except BaseException:
            kill_group()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def batch_code(script: Path, **variables: str) -> str:
    """A python-fu-eval batch command that runs ``script`` with ``variables`` defined."""
    names = {"__name__": "__gimp_batch__", **variables}
    return f"exec(open({str(script)!r}).read(), {names!r})"
