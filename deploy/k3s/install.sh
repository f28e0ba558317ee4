#!/usr/bin/env bash
# Installs k3s on the DGX Spark for raibid, idempotently: checks the machine,
# installs k3s without Traefik and with CPU/memory reserved for the system,
# lets the node pull from Gitea's registry over plain HTTP, resolves
# gitea.dgx.local and redis.dgx.local inside the cluster, creates the
# namespaces. Run it again after a change: it only does what is missing.
#
#   sudo deploy/k3s/install.sh [--dry-run] [--skip-checks]
#
# --dry-run prints every action instead of doing it (no root needed).
set -euo pipefail

DRY_RUN=0
SKIP_CHECKS=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --skip-checks) SKIP_CHECKS=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

# What the box must have, and what k3s keeps for itself.
MIN_CPUS=${MIN_CPUS:-16}
MIN_MEM_GB=${MIN_MEM_GB:-64}
MIN_DISK_GB=${MIN_DISK_GB:-200}
K3S_VERSION=${K3S_VERSION:-v1.37.2+k3s1} # the Kubernetes the tree is tested against (test/cluster, test/node)
GITEA_HOST=${GITEA_HOST:-gitea.dgx.local}
GITEA_REGISTRY=${GITEA_REGISTRY:-gitea.dgx.local:3000}
# Gitea's fixed ClusterIP (service.http.clusterIP in infrastructure/controllers/gitea.yaml).
GITEA_IP=${GITEA_IP:-10.43.0.30}
GITEA_SVC=${GITEA_SVC:-gitea-http.infrastructure.svc.cluster.local}
REDIS_SVC=${REDIS_SVC:-redis.infrastructure.svc.cluster.local}

say() { printf '==> %s\n' "$*"; }
run() {
  if [ "$DRY_RUN" = 1 ]; then printf 'would run: %s\n' "$*"; else "$@"; fi
}
# write FILE: stdin to FILE, only when it differs (so k3s restarts only on change).
write() {
  local file=$1 content
  content=$(cat)
  if [ "$DRY_RUN" = 1 ]; then
    printf 'would write %s:\n%s\n' "$file" "$content"
    return 1
  fi
  if [ -f "$file" ] && [ "$(cat "$file")" = "$content" ]; then return 1; fi
  mkdir -p "$(dirname "$file")"
  printf '%s\n' "$content" >"$file"
  say "wrote $file"
}

check() {
  local cpus mem_gb disk_gb fail=0
  cpus=$(nproc)
  mem_gb=$(awk '/MemTotal/ {printf "%d", $2/1024/1024}' /proc/meminfo)
  disk_gb=$(df -BG --output=avail /var/lib 2>/dev/null | tail -1 | tr -dc 0-9)
  say "machine: $cpus CPUs, ${mem_gb} GB RAM, ${disk_gb} GB free under /var/lib, $(uname -m)"
  [ "$cpus" -ge "$MIN_CPUS" ] || { echo "  need at least $MIN_CPUS CPUs" >&2; fail=1; }
  [ "$mem_gb" -ge "$MIN_MEM_GB" ] || { echo "  need at least $MIN_MEM_GB GB RAM" >&2; fail=1; }
  [ "${disk_gb:-0}" -ge "$MIN_DISK_GB" ] || { echo "  need at least $MIN_DISK_GB GB free under /var/lib" >&2; fail=1; }
  if [ "$fail" = 1 ]; then
    if [ "$DRY_RUN" = 1 ]; then say "checks failed (a dry run goes on)"; else
      echo "install.sh: this machine is too small (--skip-checks to go on anyway)" >&2; exit 1; fi
  fi
}

[ "$SKIP_CHECKS" = 1 ] || check
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (or --dry-run)" >&2
  exit 1
fi

say "k3s configuration (/etc/rancher/k3s/config.yaml)"
changed=0
write /etc/rancher/k3s/config.yaml <<CONF && changed=1 || true
# raibid: no Traefik (raibid and Gitea are reached through their Services or
# your own ingress), 8 cores and 16 GB kept for the OS and Kubernetes itself.
disable:
  - traefik
write-kubeconfig-mode: "0600"
kubelet-arg:
  - "system-reserved=cpu=4,memory=8Gi"
  - "kube-reserved=cpu=4,memory=8Gi"
  - "eviction-hard=memory.available<2Gi,nodefs.available<10%"
CONF

say "registry mirror for Gitea over plain HTTP (/etc/rancher/k3s/registries.yaml)"
write /etc/rancher/k3s/registries.yaml <<CONF && changed=1 || true
mirrors:
  "$GITEA_REGISTRY":
    endpoint:
      - "http://$GITEA_IP:3000"
configs:
  "$GITEA_REGISTRY":
    tls:
      insecure_skip_verify: true
CONF

say "$GITEA_HOST is Gitea's ClusterIP on this box (/etc/hosts): docker and buildctl push there"
if grep -qE "^[^#]*[[:space:]]$GITEA_HOST([[:space:]]|\$)" /etc/hosts 2>/dev/null; then
  say "/etc/hosts already names $GITEA_HOST"
elif [ "$DRY_RUN" = 1 ]; then
  echo "would append to /etc/hosts: $GITEA_IP $GITEA_HOST"
else
  printf '%s %s  # raibid: Gitea (deploy/k3s/install.sh)\n' "$GITEA_IP" "$GITEA_HOST" >>/etc/hosts
fi

if command -v k3s >/dev/null && systemctl is-active --quiet k3s 2>/dev/null; then
  say "k3s is installed and running"
  [ "$changed" = 0 ] || run systemctl restart k3s
else
  say "installing k3s $K3S_VERSION (--disable traefik, reservations from config.yaml)"
  if [ "$DRY_RUN" = 1 ]; then
    echo "would run: curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION=$K3S_VERSION sh -s - server --disable traefik"
  else
    curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION="$K3S_VERSION" sh -s - server --disable traefik
  fi
fi

# In a dry run, kubectl shows what it would be given on stdin.
kubectl() {
  if [ "$DRY_RUN" = 1 ]; then
    printf 'would run: kubectl %s\n' "$*"
    if [ "${*: -1}" = "-" ]; then sed 's/^/    /'; fi
  else
    k3s kubectl "$@"
  fi
}

if [ "$DRY_RUN" = 0 ]; then
  say "waiting for the node"
  k3s kubectl wait --for=condition=Ready node --all --timeout=180s
fi

say "CoreDNS entries: $GITEA_HOST and redis.dgx.local inside the cluster"
kubectl apply -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns-custom
  namespace: kube-system
data:
  raibid.override: |
    rewrite name $GITEA_HOST $GITEA_SVC
    rewrite name redis.dgx.local $REDIS_SVC
YAML

for ns in ci infrastructure monitoring; do
  say "namespace $ns"
  kubectl create namespace "$ns" --dry-run=client -o yaml </dev/null | kubectl apply -f -
done

say "done. Check: k3s kubectl get nodes; k3s kubectl get ns ci infrastructure monitoring"
