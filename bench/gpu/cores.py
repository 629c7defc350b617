"""Split this machine's CPUs into engine / gateway / load-client sets sharing no physical core.

Two hyper-threads of one core share its execution units: a gateway pinned to the sibling of a
core where vLLM's engine loop spins runs at roughly half speed, which a latency bench then
charges to the gateway. Prints shell assignments for bench/gpu/remote_run.sh:

    ENGINE_CPUS=0-3,8-11 GATEWAY_CPUS=4-5,12-13 CLIENT_CPUS=6-7,14-15

Half the physical cores go to the engine, a quarter each to the gateway and the client.
`--describe` prints the topology instead.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path


def physical_cores() -> list[list[int]]:
    """Usable CPUs grouped by (package, core), in CPU order."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for cpu in sorted(os.sched_getaffinity(0)):
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            key = (
                (topology / "physical_package_id").read_text().strip(),
                (topology / "core_id").read_text().strip(),
            )
        except OSError:  # no topology exposed: treat every CPU as a core of its own
            key = ("cpu", str(cpu))
        groups[key].append(cpu)
    return sorted(groups.values())


def cpu_list(cores: list[list[int]]) -> str:
    return ",".join(str(cpu) for cpu in sorted(c for core in cores for c in core))


def main() -> None:
    cores = physical_cores()
    if "--describe" in sys.argv:
        for core in cores:
            print("core:", " ".join(map(str, core)))
        return
    count = len(cores)
    engine, gateway = max(1, count // 2), max(1, count // 4)
    print(
        f"ENGINE_CPUS={cpu_list(cores[:engine])} "
        f"GATEWAY_CPUS={cpu_list(cores[engine : engine + gateway])} "
        f"CLIENT_CPUS={cpu_list(cores[engine + gateway :] or cores[-1:])}"
    )


if __name__ == "__main__":
    main()
