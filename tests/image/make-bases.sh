#!/usr/bin/env bash
# Makes the two local base images the image test builds from, with no registry
# (this project's machines and CI reach package registries only, so no base image can be
# pulled):
#
#   builder: Debian bookworm minbase + gcc + libc6-dev + ca-certificates and a
#            copy of the host's Rust toolchain (the only one available here),
#            laid out like the official rust image (CARGO_HOME=/usr/local/cargo).
#   runtime: distroless-like: glibc's shared libraries, libgcc_s, the Debian CA
#            bundle, /etc/passwd with nonroot (65532), no shell, no package manager.
#
# Both are cached as podman images; an existing image is kept unless --force.
set -euo pipefail
# shellcheck source=tests/image/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

need podman debootstrap rustc tar chroot
[[ $EUID -eq 0 ]] || die "debootstrap and podman import need root"

if [[ $FORCE -eq 0 ]] && podman image exists "$BUILDER_BASE" && podman image exists "$RUNTIME_BASE"; then
  log "bases present: $BUILDER_BASE, $RUNTIME_BASE (use --force to remake)"
  exit 0
fi

mkdir -p "$WORK"
ROOTFS="$WORK/rootfs-bookworm"
RUNTIME_ROOT="$WORK/rootfs-runtime"
cleanup() { rm -rf "$ROOTFS" "$RUNTIME_ROOT"; }
trap cleanup EXIT
cleanup

# ---------------------------------------------------------------- Debian rootfs
log "debootstrap bookworm (minbase + gcc, libc6-dev, ca-certificates) from $DEBIAN_MIRROR"
start=$(date +%s)
# Progress: the first line of each of debootstrap's phases (retrieving and validating,
# extracting, unpacking, configuring ...), then every 25th of the phase, about 40 lines in all;
# the whole output goes to the log.
debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates \
  bookworm "$ROOTFS" "$DEBIAN_MIRROR" 2>&1 | tee "$WORK/debootstrap.log" \
  | awk '/^I: / { v = $2; if (v == "Validating") v = "Retrieving"
                  if (v != last) { print "[image]   debootstrap: " substr($0, 4); n = 0; last = v }
                  else if (++n % 25 == 0) { print "[image]   debootstrap:   ... " substr($0, 4) }
                  fflush() }' >&2 \
  || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
log "debootstrap done in $(( $(date +%s) - start ))s"
# debootstrap leaves the downloaded .debs behind; the images need none of them.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

# ------------------------------------------------------------------ runtime base
# Only what a dynamically linked Rust binary needs at run time, as in
# gcr.io/distroless/cc-debian12: glibc's libraries and loader, libgcc_s, CA
# certificates and the user database. The file lists come from dpkg itself.
log "assembling the runtime base"
mkdir -p "$RUNTIME_ROOT"/{etc/ssl/certs,usr/lib/x86_64-linux-gnu,usr/lib64,home/nonroot,tmp,root}
# keep bookworm's merged-/usr layout so the loader path /lib64/ld-linux-x86-64.so.2 resolves
ln -s usr/lib "$RUNTIME_ROOT/lib"
ln -s usr/lib64 "$RUNTIME_ROOT/lib64"
chroot "$ROOTFS" dpkg -L libc6 libgcc-s1 \
  | grep -E '^/(usr/)?lib(64)?/.*\.so(\.[0-9]+)*$' \
  | sed 's|^/||' >"$WORK/runtime-files.txt"
[[ -s "$WORK/runtime-files.txt" ]] || die "no libraries listed by dpkg -L libc6 libgcc-s1"
tar -C "$ROOTFS" --numeric-owner -cf - -T "$WORK/runtime-files.txt" \
  | tar -C "$RUNTIME_ROOT" --numeric-owner --keep-directory-symlink -xf -
cp "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$RUNTIME_ROOT/etc/ssl/certs/ca-certificates.crt"
cp "$ROOTFS/etc/os-release" "$RUNTIME_ROOT/etc/os-release" 2>/dev/null \
  || cp "$ROOTFS/usr/lib/os-release" "$RUNTIME_ROOT/etc/os-release"
cat >"$RUNTIME_ROOT/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$RUNTIME_ROOT/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$RUNTIME_ROOT/etc/nsswitch.conf"
chmod 1777 "$RUNTIME_ROOT/tmp"
chmod 700 "$RUNTIME_ROOT/root"
chown 65532:65532 "$RUNTIME_ROOT/home/nonroot"
[[ -e "$RUNTIME_ROOT/lib64/ld-linux-x86-64.so.2" ]] || die "runtime base has no dynamic loader"
for shell in bin/sh bin/bash usr/bin/sh; do
  [[ ! -e "$RUNTIME_ROOT/$shell" ]] || die "runtime base unexpectedly contains /$shell"
done
podman rmi -f "$RUNTIME_BASE" >/dev/null 2>&1 || true
tar -C "$RUNTIME_ROOT" --numeric-owner -cf - . \
  | podman import \
      --change 'USER 65532:65532' \
      --change 'WORKDIR /home/nonroot' \
      --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      --message 'distroless-like runtime base for the epinio-irsa image test' \
      - "$RUNTIME_BASE" >/dev/null
log "runtime base: $RUNTIME_BASE ($(du -sh "$RUNTIME_ROOT" | cut -f1))"

# ------------------------------------------------------------------ builder base
# The host's toolchain, without docs (share/) and without rustup, in the layout
# of Rust's standalone installer (prefix /usr/local): rustc finds its libraries
# and sysroot relative to its own path.
SYSROOT="$(rustc --print sysroot)"
log "copying the host Rust toolchain $RUST_VERSION from $SYSROOT"
mkdir -p "$ROOTFS/usr/local/bin" "$ROOTFS/usr/local/lib/rustlib" "$ROOTFS/usr/local/cargo"
cp -a "$SYSROOT/bin/cargo" "$SYSROOT/bin/rustc" "$ROOTFS/usr/local/bin/"
cp -a "$SYSROOT"/lib/*.so* "$ROOTFS/usr/local/lib/"
cp -a "$SYSROOT/lib/rustlib/x86_64-unknown-linux-gnu" "$ROOTFS/usr/local/lib/rustlib/"
# The builder fetches crates from crates.io, so it trusts what the host trusts
# (on this machine that includes the sandbox's egress CA); the runtime base above
# keeps Debian's own bundle.
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
podman rmi -f "$BUILDER_BASE" >/dev/null 2>&1 || true
tar -C "$ROOTFS" --numeric-owner -cf - . \
  | podman import \
      --change 'ENV CARGO_HOME=/usr/local/cargo' \
      --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --message "bookworm + gcc + host Rust $RUST_VERSION, builder base for the epinio-irsa image test" \
      - "$BUILDER_BASE" >/dev/null
log "builder base: $BUILDER_BASE ($(du -sh "$ROOTFS" | cut -f1))"
# rustc finds its libraries through $ORIGIN, which needs /proc: check inside a container.
podman run --rm --pull=never --network=none "$BUILDER_BASE" sh -c 'rustc --version && cargo --version && cc --version | head -1' \
  || die "the copied toolchain does not run inside the builder base"
