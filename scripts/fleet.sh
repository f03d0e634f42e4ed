#!/usr/bin/env bash
# scripts/fleet.sh up|down|provision|inventory|status [-- ANSIBLE-PLAYBOOK-ARGS]
#
# Orchestrates the local Vagrant fleet: systemd containers (docker provider, the
# default) or real VMs (BEANFLEET_PROVIDER=libvirt).
#   up         docker: dockerd-up, apt repo, image, wheelhouse, `vagrant up` (retried up
#              to 3 times, destroying first), inventory, provision.
#              libvirt: libvirtd, box (scripts/vm-box.sh), wheelhouse, `vagrant up
#              --no-provision` (bounded; on failure destroy, restart libvirtd and
#              retry once), `vagrant provision`, inventory
#   down       `vagrant destroy -f` (+ removes leftover containers of this fleet)
#   provision  run the playbook against the running fleet (see below)
#   inventory  write the Ansible inventory for the running fleet (see below)
#   status     containers, IPs and memory use of the running fleet
#
# One fleet per BEANFLEET_RELEASE x BEANFLEET_MANAGER (x provider); several can run
# side by side. State lives in $BUILD_DIR/fleets/<fleet>/:
#   vagrant/          Vagrant's state (VAGRANT_DOTFILE_PATH, overridable), except for
#                     the default fleet (docker, bookworm, systemd: what `make up`
#                     builds), whose state is ./.vagrant, so that plain `vagrant status`,
#                     `vagrant ssh worker1` ... work in the repository
#   ssh_config        `vagrant ssh-config` of every machine
#   inventory.ini     queue + workers (fleet:children): ssh user, address,
#                     port, key, python; plus beanfleet_host_address. Use it
#                     together with ansible/inventories/vagrant (the group_vars):
#                     ansible-playbook -i ansible/inventories/vagrant -i .../inventory.ini
#   outsider.ini      the outsider host alone (NOT a fleet member)
#   extra-vars.json   the variables the Vagrantfile passes (beanfleet_manager,
#                     beanfleet_wheelhouse, ...), for -e @extra-vars.json
#   fleet.json        machines, container names, IPs (for tests)
#
# Env:
#   BEANFLEET_RELEASE      bookworm (default) | trixie
#   BEANFLEET_MANAGER      systemd (default) | supervisor | mixed (the test fleets:
#                          worker1 systemd, worker2 supervisor, from
#                          ansible/inventories/vagrant/host_vars; no extra var)
#   BEANFLEET_PROVIDER     docker (default) | libvirt (real VMs; fleet <release>-<manager>-libvirt)
#   BEANFLEET_MACHINES     machines of the fleet (default: queue worker1 worker2 monitor
#                          outsider with docker,
#                          "queue worker1" with libvirt)
#   BEANFLEET_PLAYBOOK     playbook to run (default ansible/site.yml)
#   BEANFLEET_PROVISIONER  docker: ansible (default: ansible-playbook with inventory.ini)
#                          | vagrant (`vagrant provision`, the Vagrantfile's provisioner);
#                          libvirt: always vagrant (the laptop route)
#   BEANFLEET_VENV         venv with ansible-core (default .venv)
#   BEANFLEET_UP_TRIES     `vagrant up` attempts (default 3)
#   BEANFLEET_SKIP_PROVISION=1   `up` stops after the inventory
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CMD="${1:-}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift

export BEANFLEET_RELEASE="${BEANFLEET_RELEASE:-bookworm}"
export BEANFLEET_MANAGER="${BEANFLEET_MANAGER:-systemd}"
export BEANFLEET_PROVIDER="${BEANFLEET_PROVIDER:-docker}"
check_release "$BEANFLEET_RELEASE"
# [fleet-test] mixed: per-host beanfleet_manager from the vagrant inventory's host_vars.
case "$BEANFLEET_MANAGER" in systemd|supervisor|mixed) ;; *) die "BEANFLEET_MANAGER must be systemd, supervisor or mixed";; esac
case "$BEANFLEET_PROVIDER" in
    docker) export BEANFLEET_MACHINES="${BEANFLEET_MACHINES:-queue worker1 worker2 monitor outsider}" ;;
    libvirt)
        export BEANFLEET_MACHINES="${BEANFLEET_MACHINES:-queue worker1}"
        export BEANFLEET_BOX="${BEANFLEET_BOX:-beanfleet/$BEANFLEET_RELEASE}"
        ;;
    *) die "BEANFLEET_PROVIDER must be docker or libvirt";;
esac
read -r -a MACHINE_LIST <<<"$BEANFLEET_MACHINES"
FLEET="$(fleet_name)"
FLEET_DIR="$(fleet_dir)"
LOG_TAG="fleet $FLEET"
PLAYBOOK="${BEANFLEET_PLAYBOOK:-$REPO_ROOT/ansible/site.yml}"
PROVISIONER="${BEANFLEET_PROVISIONER:-ansible}"
[ "$BEANFLEET_PROVIDER" = docker ] || PROVISIONER=vagrant
WHEELHOUSE="${BEANFLEET_WHEELHOUSE:-$BUILD_DIR/wheelhouse}"
# The Vagrantfile's provisioner sits on the last fleet machine.
LAST_FLEET_HOST=""
for name in "${MACHINE_LIST[@]}"; do [ "$name" = outsider ] || LAST_FLEET_HOST="$name"; done

export VAGRANT_CWD="$REPO_ROOT"
if [ -z "${VAGRANT_DOTFILE_PATH:-}" ] && [ "$FLEET" != bookworm-systemd ]; then
    export VAGRANT_DOTFILE_PATH="$FLEET_DIR/vagrant"
fi
VAGRANT_STATE="${VAGRANT_DOTFILE_PATH:-$REPO_ROOT/.vagrant}"
export VAGRANT_DEFAULT_PROVIDER="$BEANFLEET_PROVIDER"
export BEANFLEET_BUILD_DIR="$BUILD_DIR" BEANFLEET_WHEELHOUSE="$WHEELHOUSE" BEANFLEET_PLAYBOOK="$PLAYBOOK"
export PATH="$BEANFLEET_VENV/bin:$PATH"
export ANSIBLE_HOST_KEY_CHECKING=False
if [ -z "${ANSIBLE_CONFIG:-}" ] && [ -f "$REPO_ROOT/ansible/ansible.cfg" ]; then
    export ANSIBLE_CONFIG="$REPO_ROOT/ansible/ansible.cfg"
fi
mkdir -p "$FLEET_DIR"

# The fleet description (group_vars) lives in ansible/inventories/vagrant; the
# generated inventory.ini adds how to reach the hosts. Ansible merges both.
INVENTORY_ARGS=()
[ -d "$REPO_ROOT/ansible/inventories/vagrant" ] && INVENTORY_ARGS+=(-i "$REPO_ROOT/ansible/inventories/vagrant")
INVENTORY_ARGS+=(-i "$FLEET_DIR/inventory.ini")

containers() { docker ps -a -q --filter "label=beanfleet.fleet=$FLEET"; }

# Concurrent `vagrant up`s of several fleets trip over Vagrant's own locks
# ("machine is locked"); serialise them (it takes ~20 s per docker fleet). VMs boot in
# parallel under a time bound (a TCG boot takes minutes; a stalled libvirtd forever).
# What a failed `vagrant up` said, without Ruby backtrace lines (an unexpected error's
# message comes before its long backtrace, which would push it out of a short tail).
up_failure() {
    grep -v -e 'Progress:' -e '^[[:space:]]*/.*\.rb:[0-9]*:in ' "$1" | tail -n 25
}

vagrant_up() {
    mkdir -p "$BUILD_DIR/locks"
    local bound=600
    [ "$BEANFLEET_PROVIDER" = docker ] || bound="${BEANFLEET_VM_UP_TIMEOUT:-1200}"
    flock "$BUILD_DIR/locks/vagrant-up.lock" timeout "$bound" \
        vagrant up --provider="$BEANFLEET_PROVIDER" --no-provision >"$FLEET_DIR/vagrant-up.log" 2>&1 \
        || { up_failure "$FLEET_DIR/vagrant-up.log" >&2; return 1; }
}

destroy() {
    timeout 300 vagrant destroy -f || true
    [ "$BEANFLEET_PROVIDER" = docker ] || return 0
    # Containers Vagrant lost track of (state dir removed, interrupted run).
    local ids
    ids="$(containers)"
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086
        docker rm -f $ids >/dev/null
    fi
}

# Parse `vagrant ssh-config` into "name host port user key" lines. (With
# has_ssh Vagrant's own SSH goes through a port forwarded to 127.0.0.1.)
ssh_table() {
    awk '
        $1 == "Host" { if (h != "" && h != "*") print h, hn, p, u, k; h = $2; hn = p = u = k = "" }
        $1 == "HostName" { hn = $2 }
        $1 == "Port" { p = $2 }
        $1 == "User" { u = $2 }
        $1 == "IdentityFile" { k = $2; gsub(/"/, "", k) }
        END { if (h != "" && h != "*") print h, hn, p, u, k }
    ' "$FLEET_DIR/ssh_config"
}

# Container id and IP address (docker's default bridge) of a machine.
machine_id() { cat "$VAGRANT_STATE/machines/$1/docker/id" 2>/dev/null; }
machine_ip() {
    local id
    id="$(machine_id "$1")" || return 1
    docker inspect --format '{{.NetworkSettings.IPAddress}}' "$id"
}

# The Vagrantfile's name of the fleet (without the provider).
vagrant_fleet_name() { echo "$BEANFLEET_RELEASE-$BEANFLEET_MANAGER"; }

group_of() { case "$1" in queue*) echo queue;; worker*) echo workers;; monitor*) echo monitor;; *) echo "";; esac; }

# `vagrant ssh-config` of every machine, plus connection sharing: the tests run
# many short commands over SSH.
write_ssh_config() {
    vagrant ssh-config > "$FLEET_DIR/ssh_config.tmp" 2>"$FLEET_DIR/ssh_config.err" \
        || die "vagrant ssh-config failed (is the fleet up?): $(tail -n 3 "$FLEET_DIR/ssh_config.err")"
    {
        cat "$FLEET_DIR/ssh_config.tmp"
        # (%C: a hash, short enough for a socket path wherever the checkout is)
        printf 'Host *\n  ControlMaster auto\n  ControlPath /tmp/beanfleet-ssh-%%C\n  ControlPersist 120\n  ServerAliveInterval 5\n' 
    } > "$FLEET_DIR/ssh_config"
    rm -f "$FLEET_DIR/ssh_config.tmp"
}

# The address a VM's fleet peers see it at (its private network, eth1).
vm_address() {
    ssh -n -F "$FLEET_DIR/ssh_config" "$1" "ip -4 -o addr show dev eth1" 2>/dev/null \
        | awk '{ sub(/\/.*/, "", $4); print $4; exit }'
}

write_inventory() {
    write_ssh_config
    local name host port user key group ip gateway=""
    declare -A hostline=() fwd=() ips=() keys=()
    if [ "$BEANFLEET_PROVIDER" = docker ]; then
        gateway="$(docker inspect --format '{{.NetworkSettings.Gateway}}' "$(machine_id queue)")"
    fi
    # docker: Ansible (and tests) reach the hosts directly at their container IPs, port
    # 22: the addresses the hosts see each other at. VMs: the private network's.
    while read -r name host port user key; do
        [ -n "$name" ] || continue
        if [ "$BEANFLEET_PROVIDER" = docker ]; then
            ip="$(machine_ip "$name")" || die "no container for machine $name"
        else
            ip="$(vm_address "$name")"
        fi
        [ -n "$ip" ] || die "machine $name has no address on the fleet network"
        ips[$name]="$ip"; fwd[$name]="$host:$port"; keys[$name]="$key"
        hostline[$name]="$name ansible_host=$ip ansible_port=22 ansible_user=$user ansible_ssh_private_key_file=$key beanfleet_host_address=$ip"
        [ "$BEANFLEET_PROVIDER" = docker ] || hostline[$name]="$name ansible_host=$host ansible_port=$port ansible_user=$user ansible_ssh_private_key_file=$key beanfleet_host_address=$ip"
    done < <(ssh_table)
    for name in "${MACHINE_LIST[@]}"; do
        [ -n "${hostline[$name]:-}" ] || die "machine $name missing from vagrant ssh-config (not running?)"
    done
    local ssh_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o ControlMaster=auto -o ControlPersist=60s"
    {
        echo "# Generated by scripts/fleet.sh inventory for fleet $FLEET; do not edit."
        for group in queue workers monitor; do
            echo "[$group]"
            for name in "${MACHINE_LIST[@]}"; do
                [ "$(group_of "$name")" = "$group" ] && echo "${hostline[$name]}"
            done
            echo
        done
        echo "[fleet:children]"
        echo "queue"
        echo "workers"
        echo
        echo "[all:vars]"
        echo "ansible_python_interpreter=/usr/bin/python3"
        echo "ansible_ssh_common_args='$ssh_args'"
        echo "ansible_pipelining=true"
        if [ -n "$gateway" ]; then
            echo "# The controller as the fleet hosts see it (docker bridge gateway)."
            echo "beanfleet_controller_address=$gateway"
        fi
    } > "$FLEET_DIR/inventory.ini"
    if [ -n "${hostline[outsider]:-}" ]; then
        {
            echo "# The outsider: NOT a fleet member (firewall tests connect from here)."
            echo "[outsider]"
            echo "${hostline[outsider]}"
            echo
            echo "[all:vars]"
            echo "ansible_python_interpreter=/usr/bin/python3"
            echo "ansible_ssh_common_args='$ssh_args'"
            echo "ansible_pipelining=true"
        } > "$FLEET_DIR/outsider.ini"
    fi

    # Same variables as the Vagrantfile's EXTRA_VARS.
    # [fleet-test] mixed: no beanfleet_manager (an extra var would override host_vars).
    local manager_var=""
    [ "$BEANFLEET_MANAGER" = mixed ] || manager_var="\"beanfleet_manager\": \"$BEANFLEET_MANAGER\","
    cat > "$FLEET_DIR/extra-vars.json" <<JSON
{
  $manager_var
  "beanfleet_wheelhouse": "$WHEELHOUSE",
  "beanfleet_release": "$BEANFLEET_RELEASE",
  "ansible_python_interpreter": "/usr/bin/python3"
}
JSON
    {
        printf '{\n  "fleet": "%s",\n  "release": "%s",\n  "manager": "%s",\n  "provider": "%s",\n' \
            "$FLEET" "$BEANFLEET_RELEASE" "$BEANFLEET_MANAGER" "$BEANFLEET_PROVIDER"
        printf '  "controller_address": "%s",\n' "$gateway"
        # What a plain `vagrant` command needs to see this fleet (tests: vagrant reload).
        printf '  "vagrant_env": {"VAGRANT_DOTFILE_PATH": "%s", "BEANFLEET_MACHINES": "%s", "BEANFLEET_BOX": "%s"},\n' \
            "$VAGRANT_STATE" "$BEANFLEET_MACHINES" "${BEANFLEET_BOX:-}"
        printf '  "inventory": "%s",\n  "extra_vars": "%s",\n  "ssh_config": "%s",\n' \
            "$FLEET_DIR/inventory.ini" "$FLEET_DIR/extra-vars.json" "$FLEET_DIR/ssh_config"
        printf '  "machines": {\n'
        local first=1
        for name in "${MACHINE_LIST[@]}"; do
            [ "$first" = 1 ] || printf ',\n'
            first=0
            printf '    "%s": {"group": "%s", "container": "%s", "container_name": "%s", "address": "%s", "ssh_user": "vagrant", "ssh_key": "%s", "ssh_forwarded": "%s"}' \
                "$name" "$(group_of "$name")" "$(machine_id "$name" || true)" "beanfleet-$FLEET-$name" "${ips[$name]}" "${keys[$name]}" "${fwd[$name]}"
        done
        printf '\n  }\n}\n'
    } > "$FLEET_DIR/fleet.json"
    log "inventory: $FLEET_DIR/inventory.ini (vars: extra-vars.json, fleet.json, ssh_config)"
}

provision() {
    [ -f "$PLAYBOOK" ] || die "playbook $PLAYBOOK not found (set BEANFLEET_PLAYBOOK)"
    [ -d "$WHEELHOUSE" ] || die "wheelhouse $WHEELHOUSE missing (run scripts/wheelhouse.sh)"
    case "$PROVISIONER" in
        vagrant)
            need_cmd ansible-playbook
            vagrant provision "$LAST_FLEET_HOST"
            ;;
        ansible)
            need_cmd ansible-playbook
            [ -f "$FLEET_DIR/inventory.ini" ] || write_inventory
            ansible-playbook "${INVENTORY_ARGS[@]}" -e "@$FLEET_DIR/extra-vars.json" "$PLAYBOOK" "$@"
            ;;
        *) die "BEANFLEET_PROVISIONER must be ansible or vagrant";;
    esac
}

# Memory of one container from its cgroup (docker stats reports 0B for
# containers running systemd on this cgroup-v1 host): "usage rss" in bytes.
container_mem() {
    local id="$1" d
    for d in "/sys/fs/cgroup/memory/docker/$id" "/sys/fs/cgroup/memory/system.slice/docker-$id.scope"; do
        if [ -r "$d/memory.usage_in_bytes" ]; then
            echo "$(cat "$d/memory.usage_in_bytes") $(awk '$1 == "total_rss" { print $2 }' "$d/memory.stat")"
            return
        fi
    done
    for d in "/sys/fs/cgroup/docker/$id" "/sys/fs/cgroup/system.slice/docker-$id.scope"; do
        if [ -r "$d/memory.current" ]; then
            echo "$(cat "$d/memory.current") $(awk '$1 == "anon" { print $2 }' "$d/memory.stat")"
            return
        fi
    done
    echo "0 0"
}

status() {
    local ids id name state ip usage rss total_u=0 total_r=0
    ids="$(docker ps -a -q --no-trunc --filter "label=beanfleet.fleet=$FLEET")"
    [ -n "$ids" ] || { log "no containers for fleet $FLEET"; return 0; }
    printf '%-40s %-8s %-15s %10s %10s\n' CONTAINER STATE ADDRESS "MEM MiB" "RSS MiB" >&2
    for id in $ids; do
        read -r name state ip < <(docker inspect --format '{{.Name}} {{.State.Status}} {{.NetworkSettings.IPAddress}}' "$id")
        read -r usage rss < <(container_mem "$id")
        total_u=$((total_u + usage)); total_r=$((total_r + ${rss:-0}))
        printf '%-40s %-8s %-15s %10d %10d\n' "${name#/}" "$state" "${ip:--}" $((usage / 1048576)) $((${rss:-0} / 1048576)) >&2
    done
    printf '%-40s %-8s %-15s %10d %10d\n' "total (memory incl. page cache; rss)" "" "" $((total_u / 1048576)) $((total_r / 1048576)) >&2
}

# Containers labelled for this fleet that this Vagrant state does not know
# (left by an interrupted run or another checkout): they would block
# `docker run --name` of the machines.
remove_orphans() {
    local id known="" f orphans=()
    for f in "$VAGRANT_STATE"/machines/*/docker/id; do
        [ -f "$f" ] && known="$known $(cat "$f")"
    done
    for id in $(docker ps -a -q --no-trunc --filter "label=beanfleet.fleet=$FLEET"); do
        case " $known " in *" $id "*) ;; *) orphans+=("$id");; esac
    done
    if [ "${#orphans[@]}" -gt 0 ]; then
        log "removing ${#orphans[@]} container(s) of fleet $FLEET unknown to $VAGRANT_STATE"
        docker rm -f "${orphans[@]}" >/dev/null
    fi
}

# Recreate the fleet when its containers run an older image than the
# current beanfleet/<release>:latest (the image's inputs changed) or were
# created from another version of the Vagrantfile (create_args etc.).
recreate_if_stale() {
    local want_image want_vf id stale=""
    want_image="$(docker image inspect --format '{{.Id}}' "beanfleet/$BEANFLEET_RELEASE:latest")"
    want_vf="$(sha256sum "$REPO_ROOT/Vagrantfile" | cut -d' ' -f1)"
    for id in $(containers); do
        [ "$(docker inspect --format '{{.Image}}' "$id")" = "$want_image" ] || stale="an outdated image"
        [ "$(docker inspect --format '{{index .Config.Labels "beanfleet.vagrantfile"}}' "$id")" = "$want_vf" ] \
            || stale="${stale:-another version of the Vagrantfile}"
    done
    if [ -n "$stale" ]; then
        log "fleet containers were made from $stale; destroying them first"
        destroy
    fi
}

up_docker() {
    need_cmd vagrant docker
    timed "dockerd-up" "$SCRIPTS_DIR/dockerd-up.sh"
    timed "apt-repo $BEANFLEET_RELEASE" "$SCRIPTS_DIR/apt-repo.sh" "$BEANFLEET_RELEASE"
    timed "image $BEANFLEET_RELEASE" "$SCRIPTS_DIR/fleet-image.sh" "$BEANFLEET_RELEASE"
    timed "wheelhouse" "$SCRIPTS_DIR/wheelhouse.sh"
    recreate_if_stale
    remove_orphans
    RETRY_CLEANUP=destroy timed "vagrant up $FLEET" retry "${BEANFLEET_UP_TRIES:-3}" vagrant_up \
        || die "vagrant up failed"
    timed "inventory $FLEET" write_inventory
    if [ "${BEANFLEET_SKIP_PROVISION:-0}" != 1 ]; then
        timed "provision $FLEET ($PROVISIONER)" provision "$@" || die "provisioning failed"
    fi
}

# Domains of this fleet that this Vagrant state does not know (an interrupted run, an
# earlier checkout): they would block the creation of the machines.
remove_orphan_domains() {
    local dom id known="" f
    for f in "$VAGRANT_STATE"/machines/*/libvirt/id; do
        [ -f "$f" ] && known="$known $(cat "$f")"
    done
    for dom in $(timeout 60 virsh -q list --all --name | grep "^beanfleet-$(vagrant_fleet_name)-" || true); do
        id="$(timeout 30 virsh -q domuuid "$dom")"
        case " $known " in *" $id "*) continue;; esac
        log "removing domain $dom (unknown to $VAGRANT_STATE)"
        timeout 60 virsh -q destroy "$dom" >/dev/null 2>&1 || true
        timeout 60 virsh -q undefine "$dom" --remove-all-storage >/dev/null 2>&1 || true
    done
}

# Real VMs: the same Vagrantfile and playbook, Vagrant's own provisioner (the laptop
# route). Infrastructure steps are bounded and retried once after a fresh libvirtd;
# provisioning is not retried (a failure there is a finding).
up_libvirt() {
    need_cmd vagrant virsh
    timed "libvirtd" "$SCRIPTS_DIR/libvirt-up.sh" --restart
    if [ "$BEANFLEET_BOX" = "beanfleet/$BEANFLEET_RELEASE" ]; then
        timed "box $BEANFLEET_BOX" "$SCRIPTS_DIR/vm-box.sh" "$BEANFLEET_RELEASE"
    fi
    timed "wheelhouse" "$SCRIPTS_DIR/wheelhouse.sh"
    log "libvirt domain type: $("$SCRIPTS_DIR/vm-accel.sh")"
    remove_orphan_domains
    RETRY_CLEANUP="destroy; $SCRIPTS_DIR/libvirt-up.sh --restart" \
        timed "vagrant up $FLEET" retry "${BEANFLEET_UP_TRIES:-2}" vagrant_up || die "vagrant up failed"
    timed "inventory $FLEET" write_inventory
    if [ "${BEANFLEET_SKIP_PROVISION:-0}" != 1 ]; then
        timed "provision $FLEET (vagrant provision)" provision || die "provisioning failed"
    fi
}

case "$CMD" in
    up)
        T0=$SECONDS
        "up_$BEANFLEET_PROVIDER" "$@"
        log "fleet $FLEET is up in $((SECONDS - T0))s"
        if [ "$BEANFLEET_PROVIDER" = docker ]; then status; fi
        ;;
    down)
        need_cmd vagrant
        timed "vagrant destroy $FLEET" destroy
        rm -f "$FLEET_DIR"/{inventory.ini,outsider.ini,ssh_config,fleet.json}
        if [ "$BEANFLEET_PROVIDER" = docker ]; then
            # Older builds of the image, once no container uses them.
            docker image prune -f --filter "label=beanfleet.release=$BEANFLEET_RELEASE" >/dev/null 2>&1 || true
        else
            remove_orphan_domains
        fi
        ;;
    provision)
        timed "inventory $FLEET" write_inventory
        timed "provision $FLEET ($PROVISIONER)" provision "$@"
        ;;
    inventory)
        write_inventory
        ;;
    status)
        if [ "$BEANFLEET_PROVIDER" = docker ]; then status; else vagrant status; fi
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
