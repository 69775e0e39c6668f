#!/usr/bin/env bash
# Installs everything vcstream needs on a fresh Debian machine without Docker:
# system packages, the Python venv, Apache Kafka's jars (from Maven Central) and vcsim
# (go install). Idempotent: each step is skipped when its result is already in place.
# Everything downloaded lands in one git-ignored folder, $VCSTREAM_CACHE (.cache/).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${VCSTREAM_CACHE:-$repo/.cache}
mkdir -p "$cache/bin"
VCSIM_VERSION=v0.46.3   # the last govmomi tag whose vcsim builds with a plain `go install`
log() { printf '[install] %s\n' "$*" >&2; }

missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v kcat >/dev/null || missing+=(kcat)
command -v docker-compose >/dev/null || missing+=(docker-compose)
# vcsim's TLS certificate is made with openssl (devenv/vcsim.py)
command -v openssl >/dev/null || missing+=(openssl)
# the tests run a real Prometheus against every role and the Grafana dashboard's queries
command -v prometheus >/dev/null || missing+=(prometheus)
# a real forward proxy for the outbound-proxy tests (devenv/proxy.py)
command -v tinyproxy >/dev/null || missing+=(tinyproxy)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a cluster on 5432 at install; the project runs its own on a free port
  $sudo service postgresql stop >/dev/null 2>&1 || true
  # likewise Prometheus on 9090: tests start their own on free ports
  $sudo service prometheus stop >/dev/null 2>&1 || true
  $sudo service tinyproxy stop >/dev/null 2>&1 || true
fi

venv=$repo/.venv
stamp=$venv/.installed-$(sha1sum "$repo/pyproject.toml" | cut -c1-12)
if [ ! -f "$stamp" ]; then
  log "python venv and dependencies"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -e "$repo[dev]"
  rm -f "$venv"/.installed-*; touch "$stamp"
fi

libs=$cache/kafka/libs
pom=$repo/deploy/local/kafka/pom.xml
kstamp=$libs/.pom-$(sha1sum "$pom" | cut -c1-12)
if [ ! -f "$kstamp" ]; then
  log "Apache Kafka jars from Maven Central"
  rm -rf "$libs"
  mvn -q -B -f "$pom" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$kstamp"
fi

if [ ! -x "$cache/bin/vcsim" ] || [ "$(cat "$cache/bin/.vcsim-version" 2>/dev/null)" != "$VCSIM_VERSION" ]; then
  log "vcsim $VCSIM_VERSION (go install)"
  GOBIN=$cache/bin GOFLAGS=-mod=mod go install "github.com/vmware/govmomi/vcsim@$VCSIM_VERSION"
  echo "$VCSIM_VERSION" > "$cache/bin/.vcsim-version"
fi

# Helm, for the chart's test (`helm template` of deploy/helm/vcstream); not in Debian
HELM_VERSION=v3.21.4
if [ ! -x "$cache/bin/helm" ] || [ "$(cat "$cache/bin/.helm-version" 2>/dev/null)" != "$HELM_VERSION" ]; then
  log "helm $HELM_VERSION (go install)"
  GOBIN=$cache/bin GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$cache/bin/.helm-version"
fi

# The CloudEvents conformance tool's listener: a receiver not written here, so the Knative
# sink's test proves interoperability. Installed inside a throw-away module, because
# `go install pkg@version` also asks the proxy for the module's version list, which it refuses.
CE_CONFORMANCE_VERSION=v0.4.1
if [ ! -x "$cache/bin/cloudevents" ] || [ "$(cat "$cache/bin/.cloudevents-version" 2>/dev/null)" != "$CE_CONFORMANCE_VERSION" ]; then
  log "cloudevents conformance listener $CE_CONFORMANCE_VERSION (go install)"
  tmp=$(mktemp -d)
  (cd "$tmp" && go mod init vcstream-tools >/dev/null 2>&1 \
    && GOFLAGS=-mod=mod go get "github.com/cloudevents/conformance/cmd/cloudevents@$CE_CONFORMANCE_VERSION" 2>/dev/null \
    && GOBIN=$cache/bin GOFLAGS=-mod=mod go install github.com/cloudevents/conformance/cmd/cloudevents)
  rm -rf "$tmp"
  echo "$CE_CONFORMANCE_VERSION" > "$cache/bin/.cloudevents-version"
fi

# Go programs the tests run beside the project (built from tests/, never vendored)
for dir in "$repo"/tests/go/*/; do
  [ -f "$dir/go.mod" ] || continue
  name=$(basename "$dir")
  if [ ! -x "$cache/bin/$name" ] || [ -n "$(find "$dir" -newer "$cache/bin/$name" -type f)" ]; then
    log "go build tests/go/$name"
    (cd "$dir" && go build -o "$cache/bin/$name" .)
  fi
done
log "ready: $venv, $libs, $cache/bin"
