#!/usr/bin/env bash
# Makes sure the local services the tests talk to are up: PostgreSQL on 127.0.0.1:5432 and Redis on
# 127.0.0.1:6379. Starts them when they are down; installs them (and pgbouncer, whose instances the tests
# start themselves, Prometheus with promtool, and Alertmanager) from Debian when they are missing.
set -euo pipefail

need_apt_update=1
apt_install() {
  if [ "$need_apt_update" = 1 ]; then
    apt-get update -qq
    need_apt_update=0
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "services: installing PostgreSQL from Debian" >&2
  apt_install postgresql
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "services: starting PostgreSQL" >&2
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >&2
# The tests connect as postgres over 127.0.0.1 without a password, to the database "test". Machines of this
# kind come that way; a freshly installed cluster asks for a password on TCP, so trust loopback there.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  echo "services: trusting loopback connections in pg_hba.conf" >&2
  hba=$(runuser -u postgres -- psql -Atc 'show hba_file')
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  runuser -u postgres -- psql -qc 'select pg_reload_conf()' >/dev/null
fi
if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >&2
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "services: installing Redis from Debian" >&2
  apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "services: starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
# PgBouncer: the tests start their own instances; only the binary is needed (not the Debian service).
if ! command -v pgbouncer >/dev/null 2>&1; then
  echo "services: installing PgBouncer from Debian" >&2
  apt_install pgbouncer
fi

# promtool (Debian `prometheus`): the metrics tests lint expositions with `promtool check metrics`.
if ! command -v promtool >/dev/null 2>&1; then
  echo "services: installing Prometheus (promtool) from Debian" >&2
  apt_install prometheus
fi

# Alertmanager (Debian `prometheus-alertmanager`): the service tests route a real alert to the webhook.
if ! command -v prometheus-alertmanager >/dev/null 2>&1 && ! command -v alertmanager >/dev/null 2>&1; then
  echo "services: installing Alertmanager from Debian" >&2
  apt_install prometheus-alertmanager
fi

# Chromium (Debian `chromium`): the Grafana app's browser test drives it through playwright-core.
if ! command -v chromium >/dev/null 2>&1; then
  echo "services: installing Chromium from Debian" >&2
  apt_install chromium
fi

echo "services: PostgreSQL and Redis are up; pgbouncer, Prometheus, promtool, Alertmanager and Chromium installed" >&2
