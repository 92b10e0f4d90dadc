#!/bin/sh
# Stage 2 of the nested KVM test host (L1), run by its init (tests/kvm-host/init) after it switched
# into this machine's root. Gives L1 its own pseudo file systems (the shared root would otherwise
# show the host's /proc, /sys, /dev/pts and /tmp), brings up loopback and the user-mode network,
# then either serves commands (tests/kvm-host/agent.py, vireo.mode=agent) or runs one command on
# the console (vireo.mode=console), and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t sysfs sys /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null || mount --bind /dev/pts/ptmx /dev/ptmx
mode= run= top=
for a in $(cat /proc/cmdline); do
	case "$a" in
	vireo.mode=*) mode=${a#vireo.mode=} ;;
	vireo.run=*) run=${a#vireo.run=} ;;
	vireo.top=*) top=${a#vireo.top=} ;;
	vireo.cache=*) cache=${a#vireo.cache=} ;;
	esac
done
for tag in top cache; do
	eval dir=\$$tag
	case "$dir" in
	/dev/shm/*|/run/*|/tmp/*|/var/tmp/*|/var/lock/*|/var/log/*)
		mkdir -p "/dev/.vireo-$tag"
		mount --move "$dir" "/dev/.vireo-$tag"
		;;
	esac
done
for d in /dev/shm /run /tmp /var/tmp /var/lock /var/log; do
	[ -d "$d" ] && mount -t tmpfs -o mode=1777 tmpfs "$d"
done
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# A checkout or cache under /tmp (a CI clone, say) is hidden by the tmpfs mounted there: the
# shares were moved aside before it and come back on top now (a 9p share mounts only once).
for tag in top cache; do
	eval dir=\$$tag
	if [ -d "/dev/.vireo-$tag" ] && mountpoint -q "/dev/.vireo-$tag"; then
		mkdir -p "$dir"
		mount --move "/dev/.vireo-$tag" "$dir"
	fi
done
hostname vireo-l1
ip link set lo up
ip link set eth0 up 2>/dev/null && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
[ -c /dev/kvm ] || echo "kvm-host stage2: /dev/kvm is missing (kvm_amd did not load: does the CPU have svm?)"
chmod 666 /dev/kvm 2>/dev/null
echo "kvm-host stage2: ready ($(uname -r), $(nproc) CPUs)"
case "$mode" in
agent)
	/usr/bin/python3 "$top/tests/kvm-host/agent.py" --port 7000 --token-file "$run/token" \
		--ready "$run/ready"
	;;
console)
	cd "$(cat "$run/cwd")"
	# The console is this command's controlling terminal, so the user's keys reach it.
	setsid -c /bin/sh "$run/cmd.sh" </dev/ttyS0 >/dev/ttyS0 2>&1
	echo $? > "$run/rc"
	# What L1 says while it goes down is not the user's business.
	exec >/dev/null 2>&1 </dev/null
	dmesg -D
	;;
*) echo "kvm-host stage2: unknown vireo.mode=$mode" ;;
esac
sync
poweroff -f
