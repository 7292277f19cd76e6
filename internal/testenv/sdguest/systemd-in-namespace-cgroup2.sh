#!/bin/bash
# Boots systemd as PID 1 in new pid/mount/uts/ipc/cgroup namespaces with cgroup v2 alone, as
# in a Cairn guest (unified layout), confined to a sub-cgroup of the machine's cgroup2 hierarchy
# (/sys/fs/cgroup on a v2 host, /sys/fs/cgroup/unified on a hybrid one; without controllers
# there, systemd and libcontainer still make, join and remove cgroups). Run by sdguest.Boot for
# the cgroup v2 tests of units: usage: systemd-in-namespace-cgroup2.sh ROOTFS
set -e
R=${1:?usage: systemd-in-namespace-cgroup2.sh ROOTFS (a tree with systemd)}; SUB=${SUB:-sd-sandbox-v2}; CON=$(tty 2>/dev/null) || CON=/dev/null
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then U=/sys/fs/cgroup
elif [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then U=/sys/fs/cgroup/unified
else echo "no cgroup2 hierarchy mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified" >&2; exit 1; fi
cur=$(awk -F: '$1=="0" && $2=="" {print $3}' /proc/self/cgroup)
d=$U${cur%/}/$SUB; mkdir -p $d
echo $$ > $d/cgroup.procs
exec unshare --kill-child --cgroup --pid --fork --mount --uts --ipc --propagation private bash -ec "
mount --bind $R $R
mount -t proc proc $R/proc
mount --rbind /sys $R/sys
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs $R/dev
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do IFS=: read name ma mi <<< \"\$n\"; mknod -m 666 $R/dev/\$name c \$ma \$mi; done
touch $R/dev/console; mount --bind $CON $R/dev/console
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts -o newinstance,ptmxmode=666 devpts $R/dev/pts; ln -s pts/ptmx $R/dev/ptmx
mount -t tmpfs tmpfs $R/run
cd $R; mkdir -p .oldroot; pivot_root . .oldroot; umount -l /.oldroot
exec env -i container=unshare /lib/systemd/systemd --system
"
