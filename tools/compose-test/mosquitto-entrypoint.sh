#!/bin/sh
# The official eclipse-mosquitto image's docker-entrypoint.sh.
set -e
if [ "$(id -u)" = 0 ]; then
    [ -d /mosquitto ] && chown -R mosquitto:mosquitto /mosquitto || true
fi
exec "$@"
