#!/usr/bin/env bash
# The virtualenvs and the Node client the comparison runs, under .cache/bench/.
# Idempotent: each piece is skipped when its marker file is there.
#   mw/         ws4redis_mw (editable, this checkout) + gunicorn + uWSGI + psutil + matplotlib;
#               the orchestrator, the Python load generator and the bare server run here too
#   ws4redis06/ django-websocket-redis 0.6 as released: Django 3.2, redis-py < 4, gevent, uWSGI
#   channels/   Django Channels 4, channels_redis, daphne
#   node/       the `ws` package, for the Node load generator
# Usage: bench/setup.sh [all|mw]   (mw: only what the ws4redis_mw modes need)
set -euo pipefail
cd "$(dirname "$0")/.."
root=.cache/bench
mkdir -p "$root"
what=${1:-all}
say() { echo "bench/setup: $*" >&2; }

venv() {  # venv NAME PIP-ARGS...
  local dir=$root/$1; shift
  [ -f "$dir/.ready" ] && return 0
  say "creating $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
}

if [ ! -f $root/mw/.ready ]; then
  venv mw -e '.[test]' matplotlib
  WS4REDIS_WHEEL_CACHE=${WS4REDIS_WHEEL_CACHE:-.cache/wheels} .ci/install-uwsgi $root/mw
  touch $root/mw/.ready
fi
[ "$what" = mw ] && exit 0

if [ ! -f $root/ws4redis06/.ready ]; then
  # 0.6.0 is the last release; it predates Django 4 and redis-py 4.
  venv ws4redis06 'django-websocket-redis==0.6.0' 'Django==3.2.*' 'redis<4' gevent psutil
  WS4REDIS_WHEEL_CACHE=${WS4REDIS_WHEEL_CACHE:-.cache/wheels} .ci/install-uwsgi $root/ws4redis06
  touch $root/ws4redis06/.ready
fi

if [ ! -f $root/channels/.ready ]; then
  venv channels 'channels[daphne]>=4,<5' 'channels_redis>=4,<5' 'Django>=4.2,<6'
  touch $root/channels/.ready
fi

if [ ! -f $root/node/.ready ]; then
  if command -v npm >/dev/null; then
    mkdir -p $root/node
    cp bench/package.json bench/package-lock.json $root/node/ 2>/dev/null || cp bench/package.json $root/node/
    (cd $root/node && npm install --silent --no-audit --no-fund >/dev/null)
    touch $root/node/.ready
  else
    say "npm not found: the Node load generator is skipped, the Python one is used"
  fi
fi
