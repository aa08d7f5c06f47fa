#!/usr/bin/env bash
# The runbook's manual replacement of a failed member (000, part 1.i.c), as an operator types it: etcdctl member
# remove / member add on a healthy member, then on the failed machine stop etcd, wipe the data dir, switch the
# env file to ETCD_INITIAL_CLUSTER_STATE=existing and start. The benchmark times it against replace_member.yml.
#
# usage: tests/lab/replace_member_by_hand.sh MEMBER HEALTHY_MEMBER   (lab host names; LAB_SLOT as for the lab)
set -euo pipefail
member=$1 healthy=$2
suffix=""
[ "${LAB_SLOT:-0}" = 0 ] || suffix="-s$LAB_SLOT"

setting() { docker exec "$1$suffix" sh -c ". /etc/etcd/etcd.conf; echo \$$2"; }
endpoint=$(setting "$healthy" ETCD_ADVERTISE_CLIENT_URLS)
peer_url=$(setting "$member" ETCD_INITIAL_ADVERTISE_PEER_URLS)
data_dir=$(setting "$member" ETCD_DATA_DIR)
etcdctl() { docker exec "$healthy$suffix" etcdctl --endpoints "$endpoint" "$@"; }

id=$(etcdctl member list | awk -F', ' -v name="$member" '$3 == name {print $1}')
[ -n "$id" ] || { echo "$member is not in the member list" >&2; exit 1; }
etcdctl member remove "$id"
etcdctl member add "$member" --peer-urls="$peer_url"
docker exec "$member$suffix" sh -c "systemctl stop etcd; rm -rf '$data_dir'; install -d -o etcd -g etcd -m 0700 '$data_dir';
  sed -i 's/^ETCD_INITIAL_CLUSTER_STATE=.*/ETCD_INITIAL_CLUSTER_STATE=\"existing\"/' /etc/etcd/etcd.conf;
  systemctl start etcd"
