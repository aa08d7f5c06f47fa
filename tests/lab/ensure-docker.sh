#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io when the engine is missing and start
# dockerd in the background when nothing answers (the lab machines run no init system for it).
set -euo pipefail

# Every lab container runs systemd, which takes several inotify instances; the kernel's default of 128 per
# user runs out after a dozen containers and systemd then exits at boot.
for setting in fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=1048576; do
  if [ "$(sysctl -n "${setting%%=*}")" -lt "${setting#*=}" ]; then
    sysctl -q -w "$setting"
  fi
done

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

log=/var/log/gatewayops-dockerd.log
# The client may be an older one on PATH; the engine's own client sits beside dockerd.
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60 s; its log follows" >&2
tail -n 50 "$log" >&2
exit 1
