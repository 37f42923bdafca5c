#!/usr/bin/env bash
# The images' tests (ctest: images_test), on what scripts/images built in $1 (build/images):
#   1. one runtime-package list: each Dockerfile copies deploy/docker/<list>.packages and installs
#      from it, with no package named in its runtime stage, and scripts/images packs each image
#      from the same list;
#   2. the list covers the binary: every shared library `ldd` resolves for the built binary
#      belongs to a Debian package the image recorded in var/lib/dpkg/status.d, and is in it;
#   3. the image: user 65532:65532, the binary as entrypoint, the org.opencontainers.image.*
#      labels, no shell or package manager, and an archive that skopeo reads both as an OCI
#      archive and as a docker-archive, that `podman load` and `ctr import` (what `kind load
#      image-archive` runs, here into a containerd of the test's own) load under its name;
#   4. reproducible: scripts/images run again into a fresh folder gives the same digests.
# Usage: images_test.sh IMAGES_DIR BUILD_DIR SOURCE_DIR
set -euo pipefail
images=$1 build=$2 src=$3
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
version=$(sed -n 's/^project(stampede VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")

for pair in "agent:stampede-agent:agent/stampede-agent" "controller:stampede:controller/stampede"; do
  IFS=: read -r list name binary <<<"$pair"
  dockerfile="$src/deploy/docker/Dockerfile.$list"
  archive="$images/$name-$version.tar"
  [[ -f "$archive" ]] || { fail "$archive is missing: run scripts/images"; continue; }

  # 1. One list.
  runtime=$(sed -n '/^FROM debian:bookworm-slim/,$p' "$dockerfile")
  grep -q "^COPY deploy/docker/$list.packages /tmp/runtime.packages" <<<"$runtime" ||
    fail "$dockerfile: the runtime stage does not COPY deploy/docker/$list.packages"
  grep -q 'apt-get install .*$(sed .*/tmp/runtime.packages)' <<<"$runtime" ||
    fail "$dockerfile: the runtime stage does not install from the list"
  if grep -qE 'lib[a-z0-9+.-]+[0-9]' <<<"$(grep -v '^#' <<<"$runtime")"; then
    fail "$dockerfile: the runtime stage names a package itself: $(grep -oE 'lib[a-z0-9+.-]+[0-9]' <<<"$runtime" | head -3 | tr '\n' ' ')"
  fi
  grep -q "^image $name $list " "$src/scripts/images" ||
    fail "scripts/images does not pack $name from $list.packages"

  dir=$(mktemp -d)
  mkdir -p "$dir/layout" "$dir/rootfs"
  tar -xf "$archive" -C "$dir/layout"
  manifest=$(jq -r '.manifests[0].digest' "$dir/layout/index.json" | cut -d: -f2)
  for layer in $(jq -r '.layers[].digest' "$dir/layout/blobs/sha256/$manifest" | cut -d: -f2); do
    tar -xzf "$dir/layout/blobs/sha256/$layer" -C "$dir/rootfs"
  done

  # 2. The list covers what the binary links.
  while read -r soname path; do
    package=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1) ||
      package=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1) || true
    [[ -n "$package" ]] || { fail "$name: no Debian package owns $path ($soname)"; continue; }
    [[ -f "$dir/rootfs/var/lib/dpkg/status.d/$package" ]] ||
      fail "$name: links $soname from $package, which the image does not have (add it to $list.packages)"
    [[ -e "$dir/rootfs/usr/lib/x86_64-linux-gnu/$soname" || -e "$dir/rootfs/lib/x86_64-linux-gnu/$soname" ]] ||
      fail "$name: $soname is not in the image"
  done < <(ldd "$build/$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')

  # 3. The image.
  config=$(jq -r '.config.digest' "$dir/layout/blobs/sha256/$manifest" | cut -d: -f2)
  cfg="$dir/layout/blobs/sha256/$config"
  [[ $(jq -r '.config.User' "$cfg") == "65532:65532" ]] || fail "$name: user is $(jq -r '.config.User' "$cfg")"
  [[ $(jq -r '.config.Entrypoint[0]' "$cfg") == "/usr/local/bin/$(basename "$binary")" ]] ||
    fail "$name: entrypoint is $(jq -c '.config.Entrypoint' "$cfg")"
  for label in title description version revision created source vendor; do
    [[ -n $(jq -r --arg l "org.opencontainers.image.$label" '.config.Labels[$l] // empty' "$cfg") ]] ||
      fail "$name: no org.opencontainers.image.$label label"
  done
  [[ $(jq -r '.config.Labels["org.opencontainers.image.version"]' "$cfg") == "$version" ]] ||
    fail "$name: the version label is not $version"
  for program in bin/sh usr/bin/sh bin/bash usr/bin/dpkg usr/bin/apt usr/bin/perl; do
    [[ ! -e "$dir/rootfs/$program" ]] || fail "$name: the image has /$program"
  done
  [[ -x "$dir/rootfs/usr/local/bin/$(basename "$binary")" ]] || fail "$name: no binary"
  [[ -s "$dir/rootfs/etc/ssl/certs/ca-certificates.crt" ]] || fail "$name: no CA bundle"
  [[ $(stat -c %u "$dir/rootfs/home/nonroot") == 65532 ]] || fail "$name: /home/nonroot is not 65532's"
  if command -v skopeo >/dev/null; then
    skopeo inspect --raw "oci-archive:$archive" >/dev/null 2>&1 || fail "$name: skopeo cannot read it as an OCI archive"
    skopeo inspect --raw "docker-archive:$archive" >/dev/null 2>&1 || fail "$name: skopeo cannot read it as a docker-archive"
  else
    fail "skopeo is missing: run scripts/setup"
  fi
  ref="ghcr.io/stampede-dev/$name:$version"
  # podman load, into a storage of its own.
  if podman --root "$dir/podman" --runroot "$dir/podman-run" --storage-driver vfs load -i "$archive" \
      >"$dir/podman.log" 2>&1; then
    grep -q "Loaded image: $ref" "$dir/podman.log" || fail "$name: podman loaded it under another name: $(tail -1 "$dir/podman.log")"
  else
    fail "$name: podman load refused it: $(tail -3 "$dir/podman.log")"
  fi
  # ctr import (what kind load image-archive runs), into a containerd of its own.
  mkdir -p "$dir/containerd"
  cat >"$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd/sock"
[ttrpc]
  address = "$dir/containerd/ttrpc.sock"
TOML
  containerd --config "$dir/containerd/config.toml" >"$dir/containerd/log" 2>&1 &
  containerd_pid=$!
  for _ in $(seq 1 80); do [[ -S "$dir/containerd/sock" ]] && break; sleep 0.1; done
  if timeout 60 ctr --address "$dir/containerd/sock" -n k8s.io images import "$archive" >"$dir/ctr.log" 2>&1; then
    timeout 20 ctr --address "$dir/containerd/sock" -n k8s.io images ls -q | grep -qx "$ref" ||
      fail "$name: ctr import did not name it $ref"
  else
    fail "$name: ctr import refused it: $(tail -3 "$dir/ctr.log") $(tail -3 "$dir/containerd/log")"
  fi
  kill "$containerd_pid" 2>/dev/null || true
  wait "$containerd_pid" 2>/dev/null || true
  rm -rf "$dir"
done

# 4. Reproducible.
again=$(mktemp -d)
if STAMPEDE_BUILD=$build STAMPEDE_IMAGES_OUT=$again "$src/scripts/images" --skip-build >"$again.log" 2>&1; then
  for name in stampede-agent stampede; do
    first=$(cat "$images/$name.digest") second=$(cat "$again/$name.digest")
    if [[ "$first" == "$second" ]]; then
      echo "$name $first (the same twice)"
    else
      fail "$name: digest $first, then $second (rebuild the images if the commit changed since)"
    fi
  done
else
  cat "$again.log" >&2
  fail "scripts/images failed the second time"
fi
rm -rf "$again" "$again.log"

[[ $failures -eq 0 ]] || { echo "$failures failure(s)" >&2; exit 1; }
echo "images: all checks passed"
