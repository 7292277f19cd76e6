#!/bin/bash
# Boots systemd as PID 1 in new pid/mount/uts/ipc/cgroup namespaces, confined to a delegated
# sub-cgroup, with a private /sys/fs/cgroup (so that systemd's remounts never touch the
# host's). Run by sdguest.Boot for the tests of units: usage: systemd-in-namespace.sh ROOTFS
set -e
R=${1:?usage: systemd-in-namespace.sh ROOTFS (a tree with systemd, e.g. debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus)}; SUB=${SUB:-sd-sandbox}; CON=$(tty 2>/dev/null) || CON=/dev/null  # no terminal (CI): console output is dropped; read the journal
HS="cpu cpuacct cpuset memory devices freezer blkio pids systemd"
for h in $HS unified; do
  key=$h; [ $h = systemd ] && key=name=systemd; [ $h = unified ] && key=""
  cur=$(awk -F: -v k="$key" '$2==k{print $3}' /proc/self/cgroup)
  d=/sys/fs/cgroup/$h${cur%/}/$SUB; mkdir -p $d
  if [ $h = cpuset ]; then cat $(dirname $d)/cpuset.cpus > $d/cpuset.cpus; cat $(dirname $d)/cpuset.mems > $d/cpuset.mems; fi
  echo $$ > $d/cgroup.procs
done
exec unshare --kill-child --cgroup --pid --fork --mount --uts --ipc --propagation private bash -ec "
mount --bind $R $R
mount -t proc proc $R/proc
mount --rbind /sys $R/sys
mount -t tmpfs -o mode=755 tmpfs $R/sys/fs/cgroup
for h in $HS; do mkdir $R/sys/fs/cgroup/\$h; o=\$h; [ \$h = systemd ] && o=none,name=systemd; mount -t cgroup -o \$o cgroup $R/sys/fs/cgroup/\$h; done
mkdir $R/sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 $R/sys/fs/cgroup/unified
mount -t tmpfs -o mode=755 tmpfs $R/dev
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do IFS=: read name ma mi <<< \"\$n\"; mknod -m 666 $R/dev/\$name c \$ma \$mi; done
touch $R/dev/console; mount --bind $CON $R/dev/console
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts -o newinstance,ptmxmode=666 devpts $R/dev/pts; ln -s pts/ptmx $R/dev/ptmx
mount -t tmpfs tmpfs $R/run
cd $R; mkdir -p .oldroot; pivot_root . .oldroot; umount -l /.oldroot
exec env -i container=unshare /lib/systemd/systemd --system
"
