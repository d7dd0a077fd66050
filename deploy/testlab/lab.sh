#!/usr/bin/env bash
# The lab of real servers for flowprobe's integration tests.
#
#   lab.sh install                         install the Debian packages the lab needs
#   lab.sh up                              (re)create the namespaces and start the servers
#   lab.sh down                            stop the servers, delete the namespaces and state
#   lab.sh fw add|del PROTO PORT ACTION    switch a firewall rule in the lab's INPUT chain
#   lab.sh status                          show what runs in the lab
#
# Everything runs inside the network namespace "fplab" (10.200.0.2, fd00:200::2),
# reached from the host over a veth pair (10.200.0.1, fd00:200::1). A second
# namespace "fplab-client" (10.200.1.2) hangs off the lab on its own link.
# State (certificates, secrets, configs, pids, logs) lives in $FLOWPROBE_LAB,
# /run/flowprobe-lab by default. See README.md beside this file.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${FLOWPROBE_LAB:-/run/flowprobe-lab}
NS=fplab
CNS=fplab-client
HOST_IF=fplab0     # host end of the host<->lab link
LAB_IF=eth0        # lab end of the host<->lab link (inside fplab)
LINK_IF=fplab-c0   # lab end of the lab<->client link (inside fplab)
CLIENT_IF=eth0     # client end of the lab<->client link (inside fplab-client)
HOST4=10.200.0.1 LAB4=10.200.0.2 HOST6=fd00:200::1 LAB6=fd00:200::2
LINK4=10.200.1.1 CLIENT4=10.200.1.2
WAIT_SECONDS=${LAB_WAIT_SECONDS:-20}

PACKAGES=(
	iproute2 iptables procps iputils-ping openssl socat
	nginx chrony dnsmasq-base bind9-dnsutils slapd ldap-utils snmpd snmp
	tgt libiscsi-bin openssh-server prometheus
	# File, mail and remote-desktop servers for banner, smb, rdp, vnc, rmi;
	# rpcbind, nmbd, minissdpd and the KDC for the UDP kinds.
	vsftpd exim4-daemon-light samba samba-common-bin smbclient xrdp
	tigervnc-standalone-server default-jre-headless rpcbind minissdpd
	krb5-kdc krb5-admin-server krb5-user
	# The BMC simulator the Go tests start themselves (testlab.NewIPMISim).
	openipmi
	# The Active Directory DC the Go tests provision themselves (testlab.NewADDC);
	# samba-ad-provision (the schema) is only recommended, so it is named.
	samba-ad-dc samba-ad-provision
	# Beyond the servers: the image build, the status page in a browser, rpm
	# to read the built rpm.
	make buildah chromium fonts-dejavu-core systemd rpm
)

say() { printf 'lab: %s\n' "$*"; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" -eq 0 ] || die "$1 needs root"; }
inns() { ip netns exec "$NS" "$@"; }
ns_exists() { ip netns list | awk '{print $1}' | grep -qxF "$1"; }

# ---------------------------------------------------------------- install

cmd_install() {
	need_root install
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
			missing+=("$p")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "all packages present"
		return
	fi
	say "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# slapd: no default database; the lab builds its own from scratch.
	echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
	# Keep package scripts from starting services in the root namespace.
	local own_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		own_policy=1
	fi
	local rc=0
	if ! apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}" >/tmp/flowprobe-lab-apt.log 2>&1; then
		# The package lists may be stale or absent on a fresh machine.
		say "apt-get install failed; updating the package lists and retrying"
		apt-get update -q >>/tmp/flowprobe-lab-apt.log 2>&1 || true
		apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			"${missing[@]}" >>/tmp/flowprobe-lab-apt.log 2>&1 || rc=$?
	fi
	[ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
	if [ "$rc" -ne 0 ]; then
		tail -n 30 /tmp/flowprobe-lab-apt.log >&2
		die "apt-get install failed (log: /tmp/flowprobe-lab-apt.log)"
	fi
	say "installed (log: /tmp/flowprobe-lab-apt.log)"
}

# ---------------------------------------------------------------- helpers

# render TEMPLATE OUT [KEY=VALUE...]: copy a file from conf/, replacing
# @STATE@ and each @KEY@.
render() {
	local src=$HERE/conf/$1 out=$2 kv
	shift 2
	local args=(-e "s|@STATE@|$STATE|g")
	for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
	sed "${args[@]}" "$src" >"$out"
}

# secret FILE LEN: a random printable secret of LEN characters, mode 0600,
# without a trailing newline (ldapwhoami -y and slappasswd -T read it whole).
secret() {
	local f=$STATE/$1
	(umask 077 && openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | head -c "$2" >"$f")
	[ "$(wc -c <"$f")" -eq "$2" ] || die "could not generate $1"
}

# start NAME CMD...: run a daemon that forks by itself inside the lab.
start() {
	local name=$1
	shift
	inns "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1 || die "$name did not start (log: $STATE/logs/$name.log)"
}

# start_bg NAME PIDFILE CMD...: run a foreground program inside the lab in the
# background, in a session of its own (so it outlives the shell or job that
# ran `up`), and record its pid.
start_bg() {
	local name=$1 pidfile=$2
	shift 2
	setsid ip netns exec "$NS" "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1 &
	echo $! >"$pidfile"
}

# "${OWN_TMPFS[@]}" DIR CMD...: run CMD with an empty tmpfs of its own on
# DIR (in a mount namespace of its own), for daemons that keep lock, socket
# or pid files at fixed paths there: they leave nothing on the host and do
# not collide with a daemon of the host.
OWN_TMPFS=(unshare --mount --propagation private sh -c 'mount -t tmpfs -o mode=755 lab-run "$0" && exec "$@"')

# wait_for NAME LOG CMD...: retry CMD until it succeeds, for at most
# WAIT_SECONDS; fail naming the service and its log.
wait_for() {
	local name=$1 log=$2 deadline=$((SECONDS + WAIT_SECONDS))
	shift 2
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			if [ -f "$log" ]; then
				say "$name does not answer after ${WAIT_SECONDS}s; last lines of $log:" >&2
				tail -n 20 "$log" >&2
			else
				say "$name does not answer after ${WAIT_SECONDS}s" >&2
			fi
			die "$name is not up"
		fi
		sleep 0.2
	done
	say "$name up (${SECONDS}s)"
}

# record_pid COMM PIDFILE: write the pid of the process named COMM that runs
# in the lab namespace.
record_pid() {
	local pid
	for pid in $(ip netns pids "$NS"); do
		if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && alive "$pid"; then
			echo "$pid" >"$2"
			return 0
		fi
	done
	return 1
}

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

http_ok() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3" 2>/dev/null |
		grep -q '^HTTP/1.1 200'
}

tls_ok() { # tls_ok PORT: handshake succeeds (certificate not verified)
	timeout 3 openssl s_client -connect "$LAB4:$1" -servername lab.example.org </dev/null 2>/dev/null |
		grep -q '^-----BEGIN CERTIFICATE-----'
}

# ntp_reply PORT WANT: one NTP client request; WANT is the hex of the first two
# bytes of the reply (LI/VN/mode and stratum), or "any".
ntp_reply() {
	local got
	got=$({ printf '\043'; head -c 47 /dev/zero; } | timeout 2 socat -T1 - "UDP:$LAB4:$1" | od -An -tx1 -N2 | tr -d ' \n')
	[ -n "$got" ] && { [ "$2" = any ] || [ "$got" = "$2" ]; }
}

dns_ok() { [ "$(dig +short +time=1 +tries=1 "@$LAB4" lab.example.org A)" = "$LAB4" ]; }

ldap_ok() {
	[ "$(ldapwhoami -x -o nettimeout=2 -H "ldap://$LAB4")" = anonymous ] &&
		LDAPTLS_CACERT=$STATE/ca.pem ldapwhoami -x -o nettimeout=2 -H "ldaps://$LAB4" \
			-D uid=alice,ou=people,dc=example,dc=org -y "$STATE/ldap-user.pw" &&
		LDAPTLS_CACERT=$STATE/ca.pem ldapwhoami -x -ZZ -o nettimeout=2 -H "ldap://$LAB4" \
			-D cn=admin,dc=example,dc=org -y "$STATE/ldap-admin.pw"
}

snmp_ok() {
	snmpget -m '' -v2c -c public -t 1 -r 0 -Oqv "$LAB4" .1.3.6.1.2.1.1.5.0 | grep -q lab.example.org &&
		snmpget -m '' -v3 -l authPriv -u labuser -a SHA -A "$(cat "$STATE/snmp-auth.pw")" \
			-x AES -X "$(cat "$STATE/snmp-priv.pw")" -t 1 -r 0 -Oqv "$LAB4" .1.3.6.1.2.1.1.5.0 |
		grep -q lab.example.org
}

iscsi_ok() {
	local out
	out=$(timeout 5 iscsi-ls -i iqn.2024-01.org.example.lab:probe "iscsi://$LAB4/") &&
		grep -q 'iqn.2024-01.org.example.lab:disk1' <<<"$out" &&
		grep -q 'iqn.2024-01.org.example.lab:chap' <<<"$out"
}

ssh_ok() { timeout 2 bash -c "exec 3<>/dev/tcp/$LAB4/22 && head -c 8 <&3" 2>/dev/null | grep -q '^SSH-2.0-'; }

echo_ok() { [ "$(printf 'lab\n' | timeout 2 socat -T1 - "UDP:$LAB4:7007")" = lab ]; }

wsman_ok() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$LAB4/5985 && printf 'GET /wsman HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3" 2>/dev/null |
		grep -q '^HTTP/1.1 405'
}

# greeting_ok PORT: an FTP or SMTP server sends its 220 greeting.
greeting_ok() { timeout 2 bash -c "exec 3<>/dev/tcp/$LAB4/$1 && head -n1 <&3" 2>/dev/null | grep -q '^220 '; }

smb_ok() { timeout 5 smbclient -N -L "//$LAB4" -s "$STATE/samba/smb.conf" -m SMB3 2>&1 | grep -q '^[[:space:]]*lab[[:space:]]*Disk'; }

nmb_ok() { timeout 3 nmblookup -s "$STATE/samba/smb.conf" -U "$LAB4" LAB 2>/dev/null | grep -q "^$LAB4 LAB<00>"; }

# rdp_ok: an X.224 Connection Request with an RDP Negotiation Request (TLS)
# gets a Connection Confirm (TPKT version 3, then X.224 code 0xd0).
rdp_ok() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$LAB4/3389 &&
		printf '\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x01\x00\x00\x00' >&3 &&
		head -c 6 <&3" 2>/dev/null | od -An -tx1 | tr -d ' \n' | grep -q '^0300......d0'
}

rfb_ok() { timeout 2 bash -c "exec 3<>/dev/tcp/$LAB4/5900 && head -c 12 <&3" 2>/dev/null | grep -q '^RFB 003\.'; }

# jrmp_ok: JRMI, version 2, StreamProtocol gets a ProtocolAck (0x4e).
jrmp_ok() {
	[ "$(timeout 3 bash -c "exec 3<>/dev/tcp/$LAB4/1099 && printf 'JRMI\x00\x02K' >&3 && head -c 1 <&3" 2>/dev/null |
		od -An -tx1 | tr -d ' \n')" = 4e ]
}

rpc_ok() { rpcinfo -u "$LAB4" portmapper 2 && rpcinfo -t "$LAB4" portmapper 2; }

# ssdp_ok: a unicast M-SEARCH for the lab's device type is answered.
ssdp_ok() {
	printf 'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: %s\r\n\r\n' "$SSDP_ST" |
		timeout 3 socat -T2 - "UDP:$LAB4:1900" 2>/dev/null | grep -q '^HTTP/1.1 200 OK'
}

# kdc_ok: the KDC answers an AS-REQ for a principal it does not know.
kdc_ok() {
	local out
	out=$(KRB5_CONFIG=$STATE/krb5/krb5.conf KRB5CCNAME=MEMORY: timeout 3 kinit "nobody@$REALM" </dev/null 2>&1)
	grep -q 'not found in Kerberos database' <<<"$out"
}

ping_ok() { ping -c1 -W1 -q "$LAB4" && ping -6 -c1 -W1 -q "$LAB6" && ip netns exec "$CNS" ping -c1 -W1 -q "$LAB4"; }

find_go() {
	if command -v go >/dev/null 2>&1; then command -v go; elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go; else return 1; fi
}

# ---------------------------------------------------------------- up

net_up() {
	ip netns add "$NS"
	ip netns add "$CNS"
	inns ip link set lo up
	ip netns exec "$CNS" ip link set lo up

	ip link add "$HOST_IF" type veth peer name "$LAB_IF" netns "$NS"
	ip addr add "$HOST4/24" dev "$HOST_IF"
	ip addr add "$HOST6/64" dev "$HOST_IF" nodad
	ip link set "$HOST_IF" up
	inns ip addr add "$LAB4/24" dev "$LAB_IF"
	inns ip addr add "$LAB6/64" dev "$LAB_IF" nodad
	inns ip link set "$LAB_IF" up

	inns ip link add "$LINK_IF" type veth peer name "$CLIENT_IF" netns "$CNS"
	inns ip addr add "$LINK4/24" dev "$LINK_IF"
	inns ip link set "$LINK_IF" up
	ip netns exec "$CNS" ip addr add "$CLIENT4/24" dev "$CLIENT_IF"
	ip netns exec "$CNS" ip link set "$CLIENT_IF" up
	ip netns exec "$CNS" ip route add default via "$LINK4"
	# The host reaches the client namespace through the lab.
	ip route add 10.200.1.0/24 via "$LAB4" dev "$HOST_IF"

	inns sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0 \
		net.ipv4.ping_group_range="0 2147483647"
	ip netns exec "$CNS" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0 \
		net.ipv4.ping_group_range="0 2147483647"
}

pki_up() {
	local pki=$STATE/pki cnf=$STATE/pki/openssl.cnf log=$STATE/logs/openssl.log
	local now later san="DNS:lab.example.org,IP:$LAB4,IP:$LAB6"
	mkdir -p "$pki/issued"
	: >"$pki/index.txt"
	echo 1000 >"$pki/serial"
	render openssl.cnf "$cnf"
	ossl() { OPENSSL_CONF=$cnf LAB_SAN=${SAN:-none} openssl "$@" >>"$log" 2>&1 || die "openssl $1 failed (log: $log)"; }
	newkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
	# issue NAME CN SAN NOTBEFORE NOTAFTER [EXTENSIONS]: a certificate from the lab CA
	issue() {
		newkey "$STATE/$1-key.pem"
		ossl req -new -key "$STATE/$1-key.pem" -subj "/O=flowprobe lab/CN=$2" -out "$pki/$1.csr"
		SAN=$3 ossl ca -batch -notext -config "$cnf" -in "$pki/$1.csr" -out "$STATE/$1.pem" \
			-extensions "${6:-server_ext}" -startdate "$4" -enddate "$5"
	}
	umask 077
	newkey "$pki/ca-key.pem"
	ossl req -x509 -new -key "$pki/ca-key.pem" -subj "/O=flowprobe lab/CN=flowprobe lab CA" \
		-days 3650 -extensions ca_ext -out "$STATE/ca.pem"
	now=$(date -u +%Y%m%d%H%M%SZ)
	later=$(date -u -d '+2 years' +%Y%m%d%H%M%SZ)
	issue lab lab.example.org "$san" "$now" "$later"
	issue expired lab.example.org "$san" "$(date -u -d '-2 years' +%Y%m%d%H%M%SZ)" "$(date -u -d '-1 year' +%Y%m%d%H%M%SZ)"
	issue wrong wrong.example.net "DNS:wrong.example.net" "$now" "$later"
	issue client labclient "email:lab@example.org" "$now" "$later" client_ext
	newkey "$STATE/selfsigned-key.pem"
	SAN=$san ossl req -x509 -new -key "$STATE/selfsigned-key.pem" -subj "/O=flowprobe lab/CN=lab.example.org" \
		-days 730 -extensions self_ext -out "$STATE/selfsigned.pem"
	umask 022
	chmod 644 "$STATE"/*.pem
	chmod 600 "$STATE"/*-key.pem "$pki/ca-key.pem"
}

secrets_up() {
	secret ldap-admin.pw 16
	secret ldap-user.pw 16
	secret snmp-auth.pw 16
	secret snmp-priv.pw 16
	secret iscsi-chap.secret 14 # initiators want 12 to 16 characters
	secret krb5-master.pw 24
	secret krb5-user.pw 16
}

nginx_up() {
	local d=$STATE/nginx
	mkdir -p "$d/tmp"
	render nginx.conf "$d/nginx.conf"
	render locations.conf "$d/locations.conf"
	render wsman.conf "$d/wsman.conf"
	start nginx nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
}

chrony_up() { # chrony_up NAME TEMPLATE PORT
	local d=$STATE/$1
	mkdir -p "$d"
	render "$2" "$d/chrony.conf" NAME="$1" PORT="$3"
	# -x: never touch the host's clock; -u root: keep access to the state dir.
	start "$1" chronyd -x -u root -f "$d/chrony.conf" -l "$d/chronyd.log"
}

dnsmasq_up() {
	local d=$STATE/dnsmasq
	mkdir -p "$d"
	render dnsmasq.conf "$d/dnsmasq.conf"
	start dnsmasq dnsmasq --conf-file="$d/dnsmasq.conf"
}

slapd_up() {
	local d=$STATE/slapd admin user
	mkdir -p "$d/db"
	admin=$(slappasswd -h '{SSHA}' -T "$STATE/ldap-admin.pw") || die "slappasswd failed"
	user=$(slappasswd -h '{SSHA}' -T "$STATE/ldap-user.pw") || die "slappasswd failed"
	render slapd.conf "$d/slapd.conf" ADMIN_HASH="$admin"
	(umask 077 && render base.ldif "$d/base.ldif" USER_HASH="$user")
	slapadd -q -f "$d/slapd.conf" -l "$d/base.ldif" >>"$STATE/logs/slapd.log" 2>&1 ||
		die "slapadd failed (log: $STATE/logs/slapd.log)"
	start slapd slapd -f "$d/slapd.conf" -h "ldap:/// ldaps:///"
}

snmpd_up() {
	local d=$STATE/snmpd
	mkdir -p "$d/persist"
	render snmpd.conf "$d/snmpd.conf"
	(umask 077 && printf 'createUser labuser SHA "%s" AES "%s"\n' \
		"$(cat "$STATE/snmp-auth.pw")" "$(cat "$STATE/snmp-priv.pw")" >"$d/persist/snmpd.conf")
	start snmpd env SNMPCONFPATH="$d:$d/persist" SNMP_PERSISTENT_DIR="$d/persist" MIBS= \
		snmpd -I -smux -Lf "$d/snmpd.log" -p "$d/snmpd.pid"
}

tgt_up() {
	local d=$STATE/tgt c
	mkdir -p "$d"
	truncate -s 8M "$d/disk1.img" "$d/chap.img"
	# tgtd -f still forks once: record the pid of the tgtd in the lab.
	start_bg tgtd /dev/null tgtd -f -C "$TGT_CONTROL"
	wait_for "tgtd" "$STATE/logs/tgtd.log" record_pid tgtd "$d/tgtd.pid"
	tgtadm() { inns tgtadm -C "$TGT_CONTROL" --lld iscsi "$@"; }
	# tgtadm answers once tgtd has opened its control socket.
	wait_for "tgtd control socket" "$STATE/logs/tgtd.log" tgtadm --op show --mode target
	{
		tgtadm --op new --mode target --tid 1 -T iqn.2024-01.org.example.lab:disk1
		tgtadm --op new --mode logicalunit --tid 1 --lun 1 -b "$d/disk1.img"
		tgtadm --op bind --mode target --tid 1 -I ALL
		tgtadm --op new --mode target --tid 2 -T iqn.2024-01.org.example.lab:chap
		tgtadm --op new --mode logicalunit --tid 2 --lun 1 -b "$d/chap.img"
		tgtadm --op new --mode account --user labchap --password "$(cat "$STATE/iscsi-chap.secret")"
		tgtadm --op bind --mode account --tid 2 --user labchap
		tgtadm --op bind --mode target --tid 2 -I ALL
	} >>"$STATE/logs/tgtd.log" 2>&1 || die "configuring the iSCSI targets failed (log: $STATE/logs/tgtd.log)"
}

sshd_up() {
	local d=$STATE/ssh
	mkdir -p "$d" /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$d/ssh_host_ed25519_key"
	ssh-keygen -q -t ecdsa -N '' -f "$d/ssh_host_ecdsa_key"
	render sshd_config "$d/sshd_config"
	start sshd /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
}

vsftpd_up() {
	local d=$STATE/vsftpd
	mkdir -p "$d/empty"
	chmod 555 "$d/empty"
	: >"$d/user_list"
	render vsftpd.conf "$d/vsftpd.conf" LAB4="$LAB4"
	start_bg vsftpd "$d/vsftpd.pid" vsftpd "$d/vsftpd.conf"
}

# exim_up: Debian's own exim configuration, listening on the lab address only.
exim_up() {
	local d=$STATE/exim
	mkdir -p "$d"
	start_bg exim "$d/exim.pid" exim4 -bdf -oX "$LAB4.25" -oP "$d/exim-daemon.pid"
}

# samba_up: smbd (445, 139) and nmbd (udp 137), both in the foreground.
samba_up() {
	local d=$STATE/samba
	mkdir -p "$d/lock" "$d/state" "$d/cache" "$d/private" "$d/ncalrpc" "$d/bind-dns" "$d/share"
	chmod 700 "$d/private"
	render smb.conf "$d/smb.conf" LAB4="$LAB4"
	start_bg smbd "$d/smbd-fg.pid" smbd --foreground --no-process-group -s "$d/smb.conf"
	start_bg nmbd "$d/nmbd-fg.pid" nmbd --foreground --no-process-group -s "$d/smb.conf"
}

xrdp_up() {
	local d=$STATE/xrdp
	mkdir -p "$d"
	render xrdp.ini "$d/xrdp.ini" LAB4="$LAB4"
	# xrdp keeps its pid file in /run/xrdp, the package's own directory.
	mkdir -p /run/xrdp
	start_bg xrdp "$d/xrdp-fg.pid" "${OWN_TMPFS[@]}" /run/xrdp xrdp --nodaemon --config "$d/xrdp.ini"
}

# vnc_up: TigerVNC's Xvnc on display :59 (X11 only through the abstract
# socket in the lab), RFB on 5900 without authentication. Xvnc counts every
# connection that hangs up before the security handshake (each vnc check,
# each readiness probe) as a failed attempt and, after 5 from one host,
# answers "RFB 003.003" and "Too many security failures" for a while: the
# lab lifts that limit so tests do not depend on one another's timing.
vnc_up() {
	local d=$STATE/vnc
	mkdir -p "$d"
	start_bg xvnc "$d/xvnc.pid" Xvnc ":$VNC_DISPLAY" -rfbport 5900 -interface "$LAB4" -SecurityTypes None \
		-BlacklistThreshold 1000000 -desktop "flowprobe lab" -geometry 640x480 -depth 16 -nolisten tcp -nolisten unix -auth /dev/null
}

rmi_up() {
	local d=$STATE/rmi
	mkdir -p "$d"
	start_bg rmiregistry "$d/rmiregistry.pid" rmiregistry -J-Xmx32m -J-XX:+UseSerialGC -J-XX:TieredStopAtLevel=1 \
		"-J-Djava.rmi.server.hostname=$LAB4" 1099
}

rpcbind_up() {
	mkdir -p "$STATE/rpcbind"
	# -h: answer UDP on the lab address (and loopback) only. rpcbind keeps
	# its lock, socket and state in /run itself, and reads nothing of ours.
	start_bg rpcbind "$STATE/rpcbind/rpcbind.pid" "${OWN_TMPFS[@]}" /run rpcbind -f -h "$LAB4"
}

# ssdp_up: minissdpd on the lab's link, announcing one device; it answers an
# M-SEARCH only for what was announced through its socket.
ssdp_up() {
	local d=$STATE/ssdp
	mkdir -p "$d"
	start_bg minissdpd "$d/minissdpd-fg.pid" minissdpd -d -i "$LAB_IF" -s "$d/minissdpd.sock" -p "$d/minissdpd.pid"
}

# ssdp_announce: tell minissdpd about the lab's device (request type 4:
# type, USN, server, location, each length-prefixed).
ssdp_announce() {
	lp() { printf "\\$(printf %03o ${#1})%s" "$1"; } # lengths stay under 128
	{ printf '\004'; lp "$SSDP_ST"; lp "$SSDP_USN"; lp "flowprobe-lab/1 UPnP/1.1"; lp "http://$LAB4/ssdp.xml"; } |
		timeout 2 socat - "UNIX-CONNECT:$STATE/ssdp/minissdpd.sock"
}

# kdc_up: a realm of its own, made fresh, with one user principal.
kdc_up() {
	local d=$STATE/krb5
	mkdir -p "$d"
	render krb5.conf "$d/krb5.conf" LAB4="$LAB4" REALM="$REALM"
	render kdc.conf "$d/kdc.conf" LAB4="$LAB4" REALM="$REALM"
	: >"$d/kadm5.acl"
	local krb=(env "KRB5_CONFIG=$d/krb5.conf" "KRB5_KDC_PROFILE=$d/kdc.conf")
	{
		"${krb[@]}" kdb5_util create -s -r "$REALM" -P "$(cat "$STATE/krb5-master.pw")" &&
			"${krb[@]}" kadmin.local -r "$REALM" -q "addprinc -pw $(cat "$STATE/krb5-user.pw") alice"
	} >>"$STATE/logs/krb5kdc.log" 2>&1 || die "creating the Kerberos realm failed (log: $STATE/logs/krb5kdc.log)"
	start_bg krb5kdc "$d/krb5kdc-fg.pid" "${krb[@]}" krb5kdc -n -r "$REALM"
}

peers_up() {
	local d=$STATE/peers go
	mkdir -p "$d"
	go=$(find_go) || die "go is needed to build the lab's UDP echo and silent TCP peers"
	(cd "$HERE" && "$go" build -o "$d/peers" ./peers) >>"$STATE/logs/peers.log" 2>&1 ||
		die "building the peers failed (log: $STATE/logs/peers.log)"
	start_bg peers "$d/peers.pid" "$d/peers" -udp-echo :7007 -silent-tcp :7008
}

cmd_up() {
	need_root up
	local b
	for b in ip iptables ip6tables nginx chronyd dnsmasq dig slapd slapadd ldapwhoami snmpd snmpget \
		tgtd tgtadm iscsi-ls /usr/sbin/sshd openssl socat ping vsftpd exim4 smbd nmbd smbclient nmblookup \
		xrdp Xvnc rmiregistry rpcbind rpcinfo minissdpd krb5kdc kdb5_util kadmin.local kinit; do
		command -v "$b" >/dev/null 2>&1 || die "$b is missing: run lab.sh install first"
	done
	cmd_down quiet
	mkdir -p "$STATE/logs"
	chmod 755 "$STATE"
	net_up
	say "namespaces $NS ($LAB4, $LAB6) and $CNS ($CLIENT4) up"
	pki_up
	secrets_up

	nginx_up
	chrony_up chrony-sync chrony-sync.conf 123
	chrony_up chrony-unsync chrony-unsync.conf 1123
	dnsmasq_up
	slapd_up
	snmpd_up
	sshd_up
	tgt_up
	peers_up
	vsftpd_up
	exim_up
	samba_up
	xrdp_up
	vnc_up
	rmi_up
	rpcbind_up
	ssdp_up
	kdc_up

	wait_for "ping (host to $LAB4 and $LAB6, $CNS to $LAB4)" - ping_ok
	wait_for "nginx :80" "$STATE/nginx/error.log" http_ok "$LAB4" 80
	wait_for "nginx :5985 (WinRM stand-in)" "$STATE/nginx/error.log" wsman_ok
	for p in 443 8443 9443 10443 11443 5986; do
		wait_for "nginx :$p" "$STATE/nginx/error.log" tls_ok "$p"
	done
	wait_for "chrony :123 (synchronised, stratum 8)" "$STATE/chrony-sync/chronyd.log" ntp_reply 123 2408
	wait_for "chrony :1123 (unsynchronised)" "$STATE/chrony-unsync/chronyd.log" ntp_reply 1123 e400
	wait_for "dnsmasq :53" "$STATE/dnsmasq/dnsmasq.log" dns_ok
	wait_for "slapd :389 :636" "$STATE/slapd/slapd.log" ldap_ok
	wait_for "snmpd :161" "$STATE/snmpd/snmpd.log" snmp_ok
	wait_for "sshd :22" "$STATE/ssh/sshd.log" ssh_ok
	wait_for "tgtd :3260" "$STATE/logs/tgtd.log" iscsi_ok
	wait_for "udp echo :7007" "$STATE/logs/peers.log" echo_ok
	wait_for "silent tcp :7008" "$STATE/logs/peers.log" tcp_open "$LAB4" 7008
	wait_for "vsftpd :21" "$STATE/vsftpd/vsftpd.log" greeting_ok 21
	wait_for "exim :25" "$STATE/logs/exim.log" greeting_ok 25
	wait_for "smbd :445" "$STATE/samba/smbd.log" smb_ok
	wait_for "nmbd :137" "$STATE/samba/nmbd.log" nmb_ok
	wait_for "xrdp :3389" "$STATE/logs/xrdp.log" rdp_ok
	wait_for "Xvnc :5900" "$STATE/logs/xvnc.log" rfb_ok
	wait_for "rmiregistry :1099" "$STATE/logs/rmiregistry.log" jrmp_ok
	wait_for "rpcbind :111" "$STATE/logs/rpcbind.log" rpc_ok
	wait_for "minissdpd socket" "$STATE/logs/minissdpd.log" ssdp_announce
	wait_for "minissdpd :1900" "$STATE/logs/minissdpd.log" ssdp_ok
	wait_for "krb5kdc :88" "$STATE/krb5/kdc.log" kdc_ok
	touch "$STATE/up"
	say "lab up: state in $STATE"
}

# ---------------------------------------------------------------- down

# in_lab PID: the process lives in one of the lab's namespaces.
in_lab() {
	local n
	n=$(ip netns identify "$1" 2>/dev/null) || return 1
	[ "$n" = "$NS" ] || [ "$n" = "$CNS" ]
}

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

cmd_down() {
	need_root down
	local quiet=${1:-} pids=() pid f i
	# Daemons the lab started, by their pid files, and only if they still
	# live in the lab's namespaces (a stale pid may belong to anyone now).
	if [ -d "$STATE" ]; then
		for f in "$STATE"/*/*.pid; do
			[ -f "$f" ] || continue
			pid=$(head -n1 "$f" | tr -dc 0-9)
			[ -n "$pid" ] && in_lab "$pid" && pids+=("$pid")
		done
	fi
	# Anything else still running inside the lab's namespaces was started
	# there for the lab (by up or by a test) and goes with them.
	for n in "$NS" "$CNS"; do
		if ns_exists "$n"; then
			for pid in $(ip netns pids "$n" 2>/dev/null); do pids+=("$pid"); done
		fi
	done
	# tgtd ignores SIGTERM while it has targets; its state is all in memory.
	if [ -f "$STATE/tgt/tgtd.pid" ]; then
		pid=$(head -n1 "$STATE/tgt/tgtd.pid" | tr -dc 0-9)
		[ -n "$pid" ] && in_lab "$pid" && kill -KILL "$pid" 2>/dev/null
	fi
	if [ ${#pids[@]} -gt 0 ]; then
		kill -TERM "${pids[@]}" 2>/dev/null || true
		for i in $(seq 50); do
			local alive=()
			for pid in "${pids[@]}"; do alive "$pid" && alive+=("$pid"); done
			[ ${#alive[@]} -eq 0 ] && break
			sleep 0.1
		done
		for pid in "${pids[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
	fi
	ip netns del "$CNS" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	ip link del "$HOST_IF" 2>/dev/null || true
	rm -f "/var/run/tgtd/socket.$TGT_CONTROL" "/var/run/tgtd/socket.$TGT_CONTROL.lock"
	case "$STATE" in
	/ | /run | /tmp | "") die "refusing to remove state dir '$STATE'" ;;
	esac
	rm -rf "$STATE"
	[ -n "$quiet" ] || say "lab down"
}

# ---------------------------------------------------------------- firewall

cmd_fw() {
	need_root fw
	[ $# -eq 4 ] || die "usage: lab.sh fw add|del PROTO PORT ACTION"
	local op=$1 proto=$2 port=$3 action=$4 flag
	case "$op" in add) flag=-I ;; del) flag=-D ;; *) die "fw: unknown operation '$op' (add or del)" ;; esac
	[[ "$port" =~ ^[0-9]+$ ]] || die "fw: port '$port' is not a number"
	local m4 m6
	case "$proto" in
	tcp | udp)
		[ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "fw: port $port out of range"
		m4=(-p "$proto" --dport "$port") m6=(-p "$proto" --dport "$port")
		;;
	icmp)
		[ "$port" -eq 0 ] || die "fw: icmp takes port 0 (echo requests)"
		m4=(-p icmp --icmp-type echo-request) m6=(-p ipv6-icmp --icmpv6-type echo-request)
		;;
	*) die "fw: unknown protocol '$proto' (tcp, udp or icmp)" ;;
	esac
	local t4 t6
	case "$action" in
	drop) t4=(-j DROP) t6=(-j DROP) ;;
	tcp-reset)
		[ "$proto" = tcp ] || die "fw: tcp-reset works only for tcp"
		t4=(-j REJECT --reject-with tcp-reset) t6=(-j REJECT --reject-with tcp-reset)
		;;
	port-unreachable) t4=(-j REJECT --reject-with icmp-port-unreachable) t6=(-j REJECT --reject-with icmp6-port-unreachable) ;;
	admin-prohibited) t4=(-j REJECT --reject-with icmp-admin-prohibited) t6=(-j REJECT --reject-with icmp6-adm-prohibited) ;;
	host-unreachable) t4=(-j REJECT --reject-with icmp-host-unreachable) t6=(-j REJECT --reject-with icmp6-addr-unreachable) ;;
	net-unreachable) t4=(-j REJECT --reject-with icmp-net-unreachable) t6=(-j REJECT --reject-with icmp6-no-route) ;;
	*) die "fw: unknown action '$action'" ;;
	esac
	ns_exists "$NS" || die "fw: the lab is not up"
	inns iptables -w "$flag" INPUT "${m4[@]}" "${t4[@]}" || die "fw: iptables $op failed"
	if ! inns ip6tables -w "$flag" INPUT "${m6[@]}" "${t6[@]}"; then
		[ "$op" = add ] && inns iptables -w -D INPUT "${m4[@]}" "${t4[@]}"
		die "fw: ip6tables $op failed"
	fi
}

cmd_status() {
	ns_exists "$NS" || { say "down"; return 1; }
	[ -f "$STATE/up" ] && say "up (state in $STATE)" || say "namespaces exist but the lab is not (fully) up"
	inns ss -lntup
	inns iptables -S INPUT
	inns ip6tables -S INPUT
}

REALM=LAB.EXAMPLE.ORG
VNC_DISPLAY=59 # Xvnc's X display; its RFB port is 5900 all the same
SSDP_ST=urn:schemas-upnp-org:device:flowprobe-lab:1
SSDP_USN=uuid:00000000-0000-4000-8000-00000000f10b::$SSDP_ST
TGT_CONTROL=4260 # tgtd's control socket /var/run/tgtd/socket.N, away from a host tgtd's 0

case "${1:-}" in
install) cmd_install ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
fw) shift && cmd_fw "$@" ;;
*) die "usage: lab.sh install | up | down | status | fw add|del PROTO PORT ACTION" ;;
esac
