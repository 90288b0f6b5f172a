#!/usr/bin/env bash
# System packages the embedded stack needs: PostgreSQL 15 server and a Java
# runtime for Spark; and headless Chromium for the tests that drive the lake
# console like a person. Installs with apt-get only what is missing (needs root).
set -euo pipefail

PG_BIN="${POSTGRES_BIN_DIR:-/usr/lib/postgresql/15/bin}"
missing=()
[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] || missing+=(postgresql-15)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
# `ss` lets the tests check that every service listens on loopback only.
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
# Playwright (a dev dependency) drives this browser; it never downloads its own.
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  echo "system-deps: PostgreSQL 15, Java and Chromium present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian package starts its own cluster on 5432; stocklake runs its own.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster 15 main stop 2>/dev/null || true
fi
