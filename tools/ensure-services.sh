#!/bin/sh
# Make sure the service programs the tests start themselves are installed:
# mosquitto, mosquitto_pub/sub (mosquitto-clients) and redis-server, and tmux
# (a test runs the dream screen in it, as a person's terminal).
#
# Missing ones are installed with apt-get when this can (root, or passwordless
# sudo); otherwise the script stops with one line naming the packages. It
# starts no service, and leaves none running: Debian's maintainer scripts
# would start the system mosquitto and redis-server on install, so a
# policy-rc.d that refuses service starts is in place during the install, and
# the services are stopped and disabled afterwards for good measure.
set -u

have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}

missing=""
have mosquitto || missing="$missing mosquitto"
have mosquitto_pub || missing="$missing mosquitto-clients"
have redis-server || missing="$missing redis-server"
have tmux || missing="$missing tmux"
missing=${missing# }
[ -z "$missing" ] && exit 0

fail() {
    echo "ensure-services: missing $missing; install them with: sudo apt-get install -y $missing${1:+ ($1)}" >&2
    exit 1
}

if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    fail "not root and no passwordless sudo"
fi
command -v apt-get >/dev/null 2>&1 || fail "no apt-get on this machine"

policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    # exit 101: "action forbidden by policy", so postinst does not start the services.
    $SUDO sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy" && own_policy=1
fi
log=$(mktemp)
echo "ensure-services: installing $missing with apt-get" >&2
if $SUDO apt-get update >"$log" 2>&1 &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >>"$log" 2>&1; then
    status=0
else
    status=1
fi
[ -n "$own_policy" ] && $SUDO rm -f "$policy"
for service in mosquitto redis-server; do
    if [ -e "/etc/init.d/$service" ] || [ -e "/lib/systemd/system/$service.service" ]; then
        $SUDO service "$service" stop >/dev/null 2>&1 || true
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            $SUDO systemctl disable "$service" >/dev/null 2>&1 || true
        elif command -v update-rc.d >/dev/null 2>&1; then
            $SUDO update-rc.d "$service" disable >/dev/null 2>&1 || true
        fi
    fi
done
if [ "$status" != 0 ]; then
    tail -n 5 "$log" >&2
    rm -f "$log"
    fail "apt-get failed"
fi
rm -f "$log"
exit 0
