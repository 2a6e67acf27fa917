#!/usr/bin/env bash
# Installs the system packages the test suite needs on Debian 12. Idempotent:
# it does nothing when everything is already there.
#
# FRR is the ToR in the BGP tests; they run their own zebra and bgpd inside
# network namespaces, so the system FRR service must not start: its zebra
# would program the root namespace, and a bgpd would hold port 179 there.
set -euo pipefail

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v make >/dev/null 2>&1 || missing+=(make)
need_frr=
if [ ! -x /usr/lib/frr/bgpd ] || [ ! -x /usr/lib/frr/zebra ] || ! command -v vtysh >/dev/null 2>&1; then
	missing+=(frr)
	need_frr=1
fi

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: need root to install: ${missing[*]}" >&2
	exit 1
fi

# frr's postinst runs `invoke-rc.d frr start` (and enables frr.service under
# systemd); invoke-rc.d asks policy-rc.d first, and 101 means "not now".
# Docker images ship such a policy already; elsewhere hold one for the
# duration of the install.
policy=/usr/sbin/policy-rc.d
if [ -n "$need_frr" ] && [ ! -e "$policy" ]; then
	trap 'rm -f "$policy"' EXIT
	printf '#!/bin/sh\n# tests/install-deps.sh: no service starts while it installs\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}" >/dev/null

if [ -n "$need_frr" ]; then
	# Should a site policy have let the service start after all, stop it
	# (it is the one this script just installed) and keep it off at boot.
	if [ -d /run/systemd/system ]; then
		systemctl disable --now --quiet frr.service || true
	elif /etc/init.d/frr status >/dev/null 2>&1; then
		/etc/init.d/frr stop >/dev/null || true
		update-rc.d frr disable >/dev/null 2>&1 || true
	fi
fi
