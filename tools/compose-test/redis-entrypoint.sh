#!/bin/sh
# The official redis image's docker-entrypoint.sh, in short.
set -e
# A first argument that is an option or a .conf file is for redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
# The official image builds Redis with protected mode off by default (a
# container publishes only the ports it is told to); Debian's Redis has it on,
# which refuses every client but loopback. Same default here, unless the
# command says otherwise or names a config file (which may say it).
if [ "$1" = redis-server ]; then
    case " $* " in
    *protected-mode* | *.conf\ *) ;;
    *) set -- "$@" --protected-mode no ;;
    esac
fi
# Started as root: give /data to redis and run as redis.
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "$0" "$@"
fi
umask 0077
exec "$@"
