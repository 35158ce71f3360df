#!/bin/sh
# The official eclipse-mosquitto image's docker-entrypoint.sh.
set -e
if [ "$(id -u)" = 0 ]; then
    # shellcheck disable=SC2015 # as upstream: chown what it can (not :ro mounts)
    [ -d /mosquitto ] && chown -R mosquitto:mosquitto /mosquitto || true
fi
exec "$@"
