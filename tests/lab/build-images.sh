#!/usr/bin/env bash
# Build the lab's systemd base images without a registry: debootstrap a Debian root file system from the
# mirror apt already uses, add the packages the lab needs, and `docker import` it. An image is rebuilt only
# when this recipe changes (its sha256 is kept in the image's label).
#
# usage: build-images.sh [bookworm] [trixie]     (default: both)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)

# What goes into every image. Changing this list (or this file) rebuilds the images.
base_packages=systemd,systemd-sysv,dbus,python3,iproute2,procps,ca-certificates,curl,tar,gzip,openssl
extra_packages=(etcd-server etcd-client nginx python3-etcd3 python3-yaml lua5.1 luajit lua-cjson)
# Debian 13's image only: the lab's Prometheus and node_exporter (tests/lab/prometheus.yml starts them where an
# operator runs them), for the end-to-end alert test, which runs on Debian 13 only (tests/run): about 120 MB.
monitoring_packages=(prometheus prometheus-node-exporter)
recipe_sha=$(sha256sum "$0" | cut -c1-16)

mirror() {
  # The first Debian archive apt is configured with, from deb822 or one-line sources.
  local uri
  uri=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  fi
  [ -n "$uri" ] || { echo "no Debian mirror found in apt's sources" >&2; exit 1; }
  echo "$uri"
}

command -v debootstrap >/dev/null 2>&1 || {
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

build() {
  local suite=$1 image="gatewayops-lab:$1" rootfs have packages=("${extra_packages[@]}")
  [ "$suite" != trixie ] || packages+=("${monitoring_packages[@]}")
  have=$(docker image inspect -f '{{ index .Config.Labels "gatewayops.recipe" }}' "$image" 2>/dev/null || true)
  if [ "$have" = "$recipe_sha" ]; then
    echo "$image is up to date (recipe $recipe_sha)"
    return 0
  fi
  rootfs=$(mktemp -d "/var/tmp/gatewayops-rootfs-$suite.XXXXXX")
  trap 'umount -l "$rootfs/proc" 2>/dev/null || true; rm -rf "$rootfs"' RETURN
  echo "building $image from $(mirror) (recipe $recipe_sha)"
  debootstrap --variant=minbase --include="$base_packages" "$suite" "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2; return 1; }
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  # Keep package scripts from starting services inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod +x "$rootfs/usr/sbin/policy-rc.d"
  mount -t proc proc "$rootfs/proc"
  chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >>"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; return 1; }
  umount -l "$rootfs/proc"
  # Roles install, configure and start these themselves; the image only carries the binaries.
  chroot "$rootfs" systemctl disable etcd nginx >/dev/null 2>&1 || true
  [ "$suite" != trixie ] || chroot "$rootfs" systemctl disable prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  chroot "$rootfs" systemctl mask systemd-networkd-wait-online.service getty@tty1.service >/dev/null 2>&1 || true
  rm -rf "$rootfs/var/lib/etcd/"* "$rootfs/usr/sbin/policy-rc.d" "$rootfs/var/cache/apt/archives/"*.deb \
    "$rootfs/var/lib/apt/lists/"*
  : >"$rootfs/etc/resolv.conf"
  rm -f "$rootfs/etc/machine-id"; : >"$rootfs/etc/machine-id"
  tar -C "$rootfs" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change "LABEL gatewayops.recipe=$recipe_sha" \
    - "$image" >/dev/null
  rm -f "$rootfs.log"
  echo "built $image"
}

"$here/ensure-docker.sh"
# Each release in a process of its own, side by side: debootstrap mostly waits for the mirror.
pids=()
for suite in "${suites[@]}"; do
  build "$suite" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
exit "$failed"
