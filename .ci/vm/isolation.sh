#!/bin/sh
# Inside the VM (see .ci/cgroup-v2): a kernel with cgroup v2 alone, as systemd hosts have. Runs
# the isolation tests ($vm_tests) twice: from the root cgroup, and from a cgroup that holds
# processes (as a systemd service or a container does), then powers off.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm
mount -t devpts -o ptmxmode=666,newinstance devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
ip link set lo up
echo "vm: kernel $(uname -r), cgroup v2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
cd "$vm_repo" || poweroff -f
run() {
  echo "vm: tests in cgroup $(cut -d: -f3 /proc/self/cgroup)"
  $vm_tests --test-threads=1 2>&1
  echo "vm: exit $?"
}
run
echo "+memory +pids +cpu" > /sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/service
echo $$ > /sys/fs/cgroup/service/cgroup.procs
run
echo "vm: cgroups left: $(find /sys/fs/cgroup/service -mindepth 1 -type d | tr '\n' ' ' | head -c 1000)"
poweroff -f
