"""The newcomer's path on a bare Debian: `scripts/demo.sh` in a podman container from the
Debian bookworm base that tests/image/make-bases.sh makes (debootstrap minbase + gcc + the
host's Rust toolchain): no python3, no python3-venv, no kubectl, no curl.

1. As it is: the demo stops at once, before writing anything, naming
   `apt-get install python3 python3-venv`.
2. With Debian's python3 but not python3-venv (a stock Python, no ensurepip): it stops at once
   naming python3-venv.
3. With both (still no kubectl, no curl, no aws CLI): the whole demo runs to its end with the
   tools its set-up pins into .tools/, installing them from scratch (pip showing its progress).

The container sees a fresh clone: the repository's files (tracked and untracked, not ignored,
their times kept) copied to a scratch directory mounted at the repository's own path, so no
.tools/. The host's target/ and cargo home are mounted at their own paths as copy-on-write
overlays, so the container's cargo (the same toolchain) reuses the host's build and writes
nothing back. The host's pip network settings (its CA bundle, index, proxy) are passed
through, as a user's would be set.

Run: .tools/venv/bin/python -m pytest tests/image/test_bare_debian.py   (scripts/test.sh runs
it with the image tests, after tests/image/make-bases.sh)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ["CONTAINERS_CONF"] = str(ROOT / "tests" / "image" / "containers.conf")
CARGO_HOME = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
# What the host's network needs of pip (and apt's proxy), passed through when set.
PASSED = [
    "PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
]
APT = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"


def builder_base() -> str:
    out = subprocess.run(
        ["bash", "-c", 'source tests/image/common.sh && printf %s "$BUILDER_BASE"'],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0 or not out.stdout:
        pytest.fail(f"cannot name the builder base (rustc missing?): {out.stderr}", pytrace=False)
    return out.stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The repository's files as a fresh clone has them, times kept, and an empty target/."""
    dest = tmp_path_factory.mktemp("clone")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / "target").mkdir()
    return dest


@pytest.fixture(scope="module")
def podman(clone) -> list[str]:
    """`podman run` of the bare Debian base, the clone, target/ and cargo home mounted."""
    podman = shutil.which("podman")
    if not podman:
        pytest.fail("podman not found: run scripts/setup.sh", pytrace=False)
    base = builder_base()
    if subprocess.run([podman, "image", "exists", base], check=False).returncode != 0:
        pytest.fail(f"base image {base} missing: run tests/image/make-bases.sh", pytrace=False)
    env = [f"--env={k}={os.environ[k]}" for k in PASSED if os.environ.get(k)]
    return [
        podman, "run", "--rm", "--pull=never", "--network=host",
        f"--volume={clone}:{ROOT}", f"--volume={ROOT}/target:{ROOT}/target:O",
        f"--volume={CARGO_HOME}:{CARGO_HOME}:O", f"--env=CARGO_HOME={CARGO_HOME}",
        f"--workdir={ROOT}", *env, base,
    ]


def run_in(podman: list[str], script: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*podman, "bash", "-c", script], capture_output=True, text=True, timeout=timeout, check=False
    )


# Each step of the script below prints its marker and exit code on stdout, then what it wrote.
STEP = """
t0=$(date +%s)
bash scripts/demo.sh >/tmp/out 2>&1; rc=$?
echo "@@ {name} rc=$rc secs=$(( $(date +%s) - t0 )) tools=$(ls -A .tools | tr '\\n' ',')"
cat /tmp/out
"""


def steps(stdout: str) -> dict[str, tuple[dict[str, str], str]]:
    """The script's output by step: its marker's fields and what the demo printed."""
    found: dict[str, tuple[dict[str, str], str]] = {}
    for chunk in stdout.split("@@ ")[1:]:
        head, _, body = chunk.partition("\n")
        name, *fields = head.split(" ")
        found[name] = (dict(f.split("=", 1) for f in fields if "=" in f), body)
    return found


def assert_stops_naming(step: tuple[dict[str, str], str], install: str) -> None:
    fields, output = step
    assert fields["rc"] == "1", output
    assert int(fields["secs"]) <= 5, f"did not stop at once ({fields['secs']} s):\n{output}"
    assert fields.get("tools", "") == "", f"wrote {fields['tools']} into .tools/:\n{output}"
    assert f"install with:  apt-get install {install}\n" in output, output
    # Before building or installing anything.
    assert "== building" not in output and "Compiling" not in output, output
    assert "[setup] installing" not in output, output


def test_bare_debian_has_none_of_the_tools(podman):
    out = run_in(podman, "for t in python3 kubectl curl aws helm; do command -v $t; done; true", 60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "", f"the base is not bare:\n{out.stdout}"


def test_demo_stops_at_once_naming_what_to_install_then_runs_with_the_pinned_tools(podman):
    script = (
        STEP.format(name="bare")
        + "apt-get update -q >/dev/null && " + APT + " python3 >/dev/null || exit 3\n"
        + STEP.format(name="python3")
        + APT + " python3-venv >/dev/null || exit 3\n"
        + "for t in kubectl curl aws; do command -v $t && exit 4; done\n"
        + STEP.format(name="venv")
    )
    started = time.monotonic()
    out = run_in(podman, script, timeout=1500)
    assert out.returncode == 0, f"exit {out.returncode}:\n{out.stdout}\n{out.stderr}"
    found = steps(out.stdout)
    assert set(found) == {"bare", "python3", "venv"}, out.stdout

    assert_stops_naming(found["bare"], "python3 python3-venv")
    assert_stops_naming(found["python3"], "python3-venv")

    fields, output = found["venv"]
    assert fields["rc"] == "0", f"the demo failed with python3 and python3-venv:\n{output}"
    assert output.rstrip().endswith("demo finished"), output
    # Set-up ran from scratch, and pip said what it was doing as it did it.
    assert "[setup] creating Python venv at .tools/venv" in output, output
    assert "[setup]   Collecting moto" in output, output
    assert "[setup]   Successfully installed" in output, output
    assert "kubectl v1.34.5 at .tools/bin/kubectl" in output, output
    assert "command not found" not in output, output
    print(f"bare Debian demo: {time.monotonic() - started:.0f} s, the demo itself {fields['secs']} s")
