"""`python -m cloudkit.local.kubevirt`: run the VM simulator against any kubeconfig until Ctrl-C.

Handy on a cluster without KubeVirt; `cloudkit up` runs the same simulator in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from cloudkit.local.kubevirt.simulator import start_vm_simulator


async def _serve(kubeconfig: Path, boot_seconds: float, stop_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    handle = await start_vm_simulator(
        kubeconfig, boot_seconds=boot_seconds, stop_seconds=stop_seconds
    )
    logging.getLogger("cloudkit.local.kubevirt").info("VM simulator running")
    try:
        await stop.wait()
    finally:
        await handle.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m cloudkit.local.kubevirt", description=__doc__)
    default = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    parser.add_argument("--kubeconfig", type=Path, default=Path(default))
    parser.add_argument("--boot-seconds", type=float, default=5.0)
    parser.add_argument("--stop-seconds", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(args.kubeconfig, args.boot_seconds, args.stop_seconds))


if __name__ == "__main__":
    main()
