#!/usr/bin/env bash
# The appliance image's boot test (run as root on Debian 12; docs/image.md).
#
# Builds the image if needed (image/build; cached by its inputs), then boots
# it under qemu-system-x86_64 in software emulation with a config drive, and
# checks that it is a working appliance:
#
#  - the package list of the image equals a fresh resolution of the same
#    package selection against the archive (a second build now installs the
#    same packages);
#  - a bad config drive is refused with a message naming the field (host-side
#    check with the appliance's own validator);
#  - boot 1, config drive attached: the management API answers /v1/health
#    through a qemu port forward bound to 127.0.0.1 (user-mode networking,
#    restrict=on: nothing leaves the machine), over HTTPS pinned to the
#    certificate fingerprint the appliance printed on its console; over SSH
#    (enabled by the config drive): nea runs as the user nea with
#    CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE only, it turned
#    forwarding on for its gateway segment, its nftables table is loaded, the
#    second NIC was named by its MAC and is in its segment's bridge, no unit
#    failed, the serial console has no login, the root file system grew
#    to the disk;
#  - boot 2, a reboot with the config drive ejected: the configuration of
#    boot 1 is used; the same tunnel key, API certificate and SSH host key
#    (keys are never regenerated); the API answers again;
#  - boot 3, a fresh start with a config drive whose appliance.json is invalid:
#    the console names the field and the appliance does not start.
#  Then the VM is stopped. Boot times are logged, not asserted.
#
# Options: --keep (keep the work directory), --no-bad-boot (skip boot 3),
# --uefi (boot through OVMF instead of the BIOS).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$REPO/image/out
KEEP=0 BAD_BOOT=1 UEFI=0
for a in "$@"; do
  case $a in
    --keep) KEEP=1 ;;
    --no-bad-boot) BAD_BOOT=0 ;;
    --uefi) UEFI=1 ;;
    *) echo "usage: image/test-boot.sh [--keep] [--no-bad-boot] [--uefi]" >&2; exit 2 ;;
  esac
done

T0=$(date +%s)
log() { printf '%s test-boot: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

bash image/build
T_BUILD=$(( $(date +%s) - T0 ))
if [ "$UEFI" = 1 ] && ! dpkg-query -W -f='${Status}' ovmf 2>/dev/null | grep -q 'install ok installed'; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ovmf >/dev/null
fi

W=$(mktemp -d /tmp/nea-image-test.XXXXXX)
QEMU_PID=
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then kill "$QEMU_PID" 2>/dev/null || true; sleep 1; kill -9 "$QEMU_PID" 2>/dev/null || true; fi
  if [ "$KEEP" = 1 ]; then log "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

# --- reproducibility: the package list -----------------------------------------
log "resolving the image's package selection again"
bash image/build --resolve > "$W/packages.resolved"
if ! diff -u "$OUT/packages.txt" "$W/packages.resolved" > "$W/packages.diff"; then
  cat "$W/packages.diff" >&2
  die "the image's package list differs from a fresh resolution (the archive moved: rebuild with image/build --force)"
fi
log "package list: $(wc -l < "$OUT/packages.txt") packages, the same as a fresh resolution"

# --- config drives ----------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C nea-boot-test -f "$W/id"
# The second NIC is named by its MAC (settings.json interfaces) and backs segment 10.
SEG_MAC=52:54:00:4e:45:41
mkdir -p "$W/cfg" "$W/bad"
cat > "$W/cfg/appliance.json" <<'EOF'
{
  "role": "sp",
  "name": "boot-test",
  "tunnel": { "listenPort": 51820, "peers": [] },
  "segments": [
    { "id": 10, "name": "web", "backing": { "kind": "access", "interface": "seg0" },
      "mode": "gateway", "gateway": { "ipv4": "10.1.0.1/24" } },
    { "id": 20, "name": "db" }
  ]
}
EOF
cat > "$W/cfg/settings.json" <<EOF
{
  "hostname": "nea-boot-test",
  "management": { "interface": "eth0", "dhcp": true },
  "interfaces": { "seg0": "$SEG_MAC" },
  "nea": { "apiListen": "0.0.0.0:8443" },
  "ssh": { "authorizedKeys": ["$(cat "$W/id.pub")"] }
}
EOF
bash image/make-config-drive "$W/cfg" "$W/cfg.iso" >/dev/null
cp "$W/cfg/settings.json" "$W/bad/"
sed 's/"id": 20/"id": 5000/' "$W/cfg/appliance.json" > "$W/bad/appliance.json"
if NEA_DIR=$REPO node appliance/rootfs/usr/lib/nea-os/nea-config.js check "$W/bad" > "$W/bad.out"; then
  die "an invalid appliance.json was accepted"
fi
grep -q 'appliance.json: segments\[1\].id: must be an integer from 1 to 4094' "$W/bad.out" || die "unexpected message: $(cat "$W/bad.out")"
log "bad config refused: $(cat "$W/bad.out")"
# The bad drive for boot 3, written without the validation make-config-drive does.
xorriso -as mkisofs -quiet -V NEACONFIG -J -r -o "$W/bad.iso" "$W/bad/appliance.json" "$W/bad/settings.json"


# --- the VM -------------------------------------------------------------------------
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
API_PORT=$(free_port)
SSH_PORT=$(free_port)
qemu-img create -q -f qcow2 -F qcow2 -b "$OUT/nea-appliance.qcow2" "$W/disk.qcow2" 2G
FIRMWARE=()
if [ "$UEFI" = 1 ]; then
  cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/vars.fd"
  FIRMWARE=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd -drive if=pflash,format=raw,file="$W/vars.fd")
fi
CONSOLE=$W/console.log

# Boots 1 and 2 are one qemu process (a guest reboot resets the machine,
# the monitor ejects the CD, the console log goes on); boot 3 is another,
# with the bad config drive.
start_vm() {
  qemu-system-x86_64 -machine pc -accel tcg -cpu max -smp 2 -m 1024 \
    "${FIRMWARE[@]}" \
    -display none -monitor "unix:$W/monitor.sock,server,nowait" -serial "file:$CONSOLE" \
    -drive "file=$W/disk.qcow2,if=virtio,format=qcow2" \
    -drive "id=cd,file=$1,media=cdrom,readonly=on" \
    -netdev "user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:$API_PORT-:8443,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22" \
    -device virtio-net-pci,netdev=mgmt \
    -netdev user,id=seg,restrict=on -device "virtio-net-pci,netdev=seg,mac=$SEG_MAC" \
    > "$W/qemu.out" 2>&1 &
  QEMU_PID=$!
  BOOT_T0=$(date +%s.%N)
}

# monitor COMMAND: one command to qemu's monitor.
monitor() {
  node - "$W/monitor.sock" "$1" <<'JS'
const [sock, cmd] = process.argv.slice(2);
const c = require('node:net').connect(sock, () => { c.write(cmd + '\n'); setTimeout(() => c.end(), 500); });
c.on('data', () => {});
c.on('error', (e) => { console.error(e.message); process.exit(1); });
JS
}

# count PATTERN: lines of the console log with PATTERN.
count() { local n; n=$(grep -ac -- "$1" "$CONSOLE" 2>/dev/null); echo "${n:-0}"; }

since() { awk -v a="$BOOT_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_console PATTERN COUNT TIMEOUT: until the console shows PATTERN COUNT times.
wait_console() {
  local deadline=$(( $(date +%s) + $3 ))
  until [ "$(count "$1")" -ge "$2" ]; do
    kill -0 "$QEMU_PID" 2>/dev/null || die "qemu exited: $(cat "$W/qemu.out")"
    [ "$(date +%s)" -lt "$deadline" ] || { tail -40 "$CONSOLE" >&2; die "no \"$1\" (#$2) on the console within $3 s"; }
    sleep 0.5
  done
}

# health FINGERPRINT: GET /v1/health pinned to the certificate's SHA-256.
health() {
  node - "$API_PORT" "$1" <<'JS'
const https = require('node:https');
const [port, pin] = process.argv.slice(2);
const req = https.get({ host: '127.0.0.1', port: Number(port), path: '/v1/health', rejectUnauthorized: false, timeout: 10000 }, (res) => {
  const fp = res.socket.getPeerCertificate().fingerprint256.replace(/:/g, '').toLowerCase();
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => {
    if (fp !== pin) { console.log(`certificate ${fp}, expected ${pin}`); process.exit(1); }
    console.log(`${res.statusCode} ${body}`);
    process.exit(res.statusCode === 200 && JSON.parse(body).status === 'ok' ? 0 : 1);
  });
});
req.on('error', (e) => { console.log(e.message); process.exit(1); });
req.on('timeout', () => req.destroy(new Error('timeout')));
JS
}

wait_health() {
  local deadline=$(( $(date +%s) + $2 ))
  until health "$1" > "$W/health.out"; do
    kill -0 "$QEMU_PID" 2>/dev/null || die "qemu exited"
    [ "$(date +%s)" -lt "$deadline" ] || die "no health answer within $2 s: $(cat "$W/health.out")"
    sleep 1
  done
}

vm() { ssh -q -i "$W/id" -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile="$W/known_hosts" -o ConnectTimeout=20 -o BatchMode=yes root@127.0.0.1 "$@"; }

reboot_vm() {
  vm 'systemctl reboot' || true
  BOOT_T0=$(date +%s.%N)
}

# The fingerprint nea printed on the console (nea.service logs there too).
console_fingerprint() { grep -a 'management API listening' "$CONSOLE" | tail -1 | sed -n 's/.*fingerprint=\([0-9a-f]\{64\}\).*/\1/p'; }
val() { sed -n "s/^$1=//p" "$2"; }

# --- boot 1 ---------------------------------------------------------------------------
log "boot 1: qemu (TCG), API on 127.0.0.1:$API_PORT, SSH on 127.0.0.1:$SSH_PORT"
start_vm "$W/cfg.iso"
wait_console 'nea-config: ready' 1 300
T_CONFIG=$(since)
wait_console 'management API listening' 1 300
FP1=$(console_fingerprint)
[ -n "$FP1" ] || die "no certificate fingerprint on the console"
wait_health "$FP1" 120
T_HEALTH=$(since)
log "boot 1: config applied at ${T_CONFIG} s, API healthy at ${T_HEALTH} s: $(cat "$W/health.out")"
grep -a 'nea-config:' "$CONSOLE" | tr -d '\r' | sed 's/^/  console: /' >&2

# Checks inside the appliance, over SSH.
vm 'set -e
pid=$(systemctl show -p MainPID --value nea.service)
echo "active=$(systemctl is-active nea.service)"
echo "user=$(stat -c %U /proc/$pid)"
echo "capeff=$(awk "/^CapEff/ {print \$2}" /proc/$pid/status)"
echo "capbnd=$(awk "/^CapBnd/ {print \$2}" /proc/$pid/status)"
echo "forward=$(cat /proc/sys/net/ipv4/ip_forward)"
echo "rp_filter=$(cat /proc/sys/net/ipv4/conf/all/rp_filter)"
echo "nft=$(nft list tables | tr "\n" " ")"
echo "serial_getty=$(systemctl is-active serial-getty@ttyS0.service || true)"
echo "failed=$(systemctl list-units --failed --plain --no-legend | cut -d" " -f1 | tr "\n" " ")"
echo "root_mb=$(df -m --output=size / | tail -1 | tr -d " ")"
echo "keyhash=$(sha256sum < /var/lib/nea/private.key | cut -c1-64)"
echo "keymode=$(stat -c %a:%U /var/lib/nea/private.key)"
echo "api_fp=$(sed -n "s/.*\"fingerprint\": *\"\([0-9a-f]*\)\".*/\1/p" /var/lib/nea/api.json)"
echo "seg0=$(cat /sys/class/net/seg0/address 2>/dev/null):$(basename "$(readlink /sys/class/net/seg0/master 2>/dev/null)")"
echo "hostname=$(hostname)"
echo "node=$(node --version)"
echo "boot=$(systemd-analyze 2>/dev/null | head -1)"
systemd-analyze blame 2>/dev/null | head -6 | sed "s/^ */blame: /"
journalctl -b -p err --no-pager -q | tail -5 | sed "s/^/journal error: /"
nea status | head -3 | sed "s/^/status: /"
' > "$W/vm1.txt" || die "SSH into the appliance failed"
sed 's/^/  appliance: /' "$W/vm1.txt" >&2
[ "$(val active "$W/vm1.txt")" = active ] || die "nea.service is not active"
[ "$(val user "$W/vm1.txt")" = nea ] || die "nea does not run as the user nea"
# CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13): 0x3400.
[ "$(val capeff "$W/vm1.txt")" = 0000000000003400 ] || die "unexpected effective capabilities"
[ "$(val capbnd "$W/vm1.txt")" = 0000000000003400 ] || die "unexpected capability bounding set"
[ "$(val forward "$W/vm1.txt")" = 1 ] || die "nea did not turn IPv4 forwarding on for its gateway segment"
[ "$(val rp_filter "$W/vm1.txt")" = 2 ] || die "rp_filter is not loose"
val nft "$W/vm1.txt" | grep -q 'table inet nea_boot_test' || die "nea's nftables table is missing"
[ "$(val serial_getty "$W/vm1.txt")" != active ] || die "the serial console offers a login"
[ -z "$(val failed "$W/vm1.txt" | tr -d ' ')" ] || die "failed units: $(val failed "$W/vm1.txt")"
[ "$(val root_mb "$W/vm1.txt")" -gt 1500 ] || die "the root file system did not grow to the 2 GB disk"
[ "$(val seg0 "$W/vm1.txt")" = "$SEG_MAC:nea-br10" ] || die "the NIC $SEG_MAC is not seg0 in segment 10's bridge"
[ "$(val keymode "$W/vm1.txt")" = 600:nea ] || die "private.key is not 0600 nea"
[ "$(val api_fp "$W/vm1.txt")" = "$FP1" ] || die "api.json's fingerprint differs from the console's"
KEY1=$(val keyhash "$W/vm1.txt")
PUB1=$(sed -n 's/^status: *public key *//p' "$W/vm1.txt")
[ -n "$PUB1" ] && grep -aq "tunnel public key $PUB1" "$CONSOLE" || die "the console did not show the tunnel public key ($PUB1)"
HOSTKEY1=$(ssh-keygen -l -f "$W/known_hosts" | awk '{print $2}' | sort -u)

# --- boot 2: reboot without the config drive, same keys ---------------------------------
log "boot 2: reboot, config drive ejected"
monitor 'eject -f cd' || die "cannot eject the config drive"
reboot_vm
wait_console 'nea-config: ready' 2 300
grep -a 'nea-config: appliance' "$CONSOLE" | tail -1 | grep -q 'the files of an earlier boot' || die "boot 2 did not use the installed configuration"
wait_console 'management API listening' 2 300
FP2=$(console_fingerprint)
[ "$FP2" = "$FP1" ] || die "the API certificate changed across the reboot"
wait_health "$FP1" 120
T_HEALTH2=$(since)
KEY2=$(vm 'sha256sum < /var/lib/nea/private.key | cut -c1-64')
[ "$KEY2" = "$KEY1" ] || die "the tunnel key changed across the reboot"
HOSTKEY2=$(ssh-keygen -l -f "$W/known_hosts" | awk '{print $2}' | sort -u)
[ "$HOSTKEY2" = "$HOSTKEY1" ] || die "the SSH host key changed across the reboot"
[ "$(grep -ac 'generated the tunnel key' "$CONSOLE")" = 1 ] || die "the tunnel key was generated again"
[ "$(grep -ac 'generated the SSH host key' "$CONSOLE")" = 1 ] || die "the SSH host key was generated again"
log "boot 2: API healthy ${T_HEALTH2} s after the reboot; same tunnel key, certificate and SSH host key"

# power_off: shuts the guest down over SSH and waits for qemu to exit.
power_off() {
  vm 'systemctl poweroff' || true
  local deadline=$(( $(date +%s) + 120 ))
  while kill -0 "$QEMU_PID" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || die "the VM did not power off within 120 s"
    sleep 0.5
  done
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=
}

# --- boot 3: a bad config drive ----------------------------------------------------------
if [ "$BAD_BOOT" = 1 ]; then
  log "boot 3: power off, boot with a config drive whose appliance.json is invalid"
  power_off
  CONSOLE=$W/console3.log
  start_vm "$W/bad.iso"
  wait_console 'nea-config: the appliance is NOT started' 1 300
  T_BAD=$(since)
  grep -a 'nea-config: ERROR' "$CONSOLE" | grep -q 'appliance.json: segments\[1\].id: must be an integer from 1 to 4094' \
    || die "the console does not name the bad field: $(grep -a 'nea-config: ERROR' "$CONSOLE")"
  # Nothing may start the appliance afterwards.
  sleep 15
  [ "$(count 'management API listening')" = 0 ] || die "nea started with a bad config"
  log "boot 3: refused ${T_BAD} s after the reboot: $(grep -a 'nea-config: ERROR' "$CONSOLE" | tr -d '\r' | sed 's/^.*nea-config: //'); nea not started"
fi

log "stopping the VM"
if [ "$BAD_BOOT" = 1 ]; then
  # No SSH after a refused config, and nothing on the throw-away disk to keep.
  monitor quit || true
  for _ in $(seq 60); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.5; done
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=
else
  power_off
fi

raw_mb=$(( $(stat -c %s "$OUT/nea-appliance.raw") / 1000000 ))
qcow_mb=$(( $(stat -c %s "$OUT/nea-appliance.qcow2") / 1000000 ))
log "PASS in $(( $(date +%s) - T0 )) s (build ${T_BUILD} s): image raw ${raw_mb} MB, qcow2 ${qcow_mb} MB; API healthy ${T_HEALTH} s after boot 1 started, ${T_HEALTH2} s after the reboot"
