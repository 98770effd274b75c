"""`cloudkit operator`: validate the configuration, check AAP, then run the shell (shell.py).

Configuration errors (settings, AAP URL or token, kubeconfig, busy ports) exit with code 2 and
one line per problem on stderr, never with a secret in it. They are found before kopf and the
Kubernetes clients are even imported (seconds on a busy machine), so a typo fails fast.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from cloudkit.operator.settings import SettingsError, load_settings

EXIT_CONFIG = 2
EXIT_LEADERSHIP_LOST = 1


def _configure_logging() -> None:
    level = os.environ.get("CLOUDKIT_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kopf's per-event chatter adds nothing to our one line per pass.
    logging.getLogger("kopf").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _fail(problems: list[str]) -> None:
    for problem in problems:
        print(f"cloudkit operator: {problem}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)


def run(kubeconfig: Path | None = None) -> None:
    """Entry point of `cloudkit operator`; configured by CLOUDKIT_* variables and KUBECONFIG."""
    _configure_logging()
    if kubeconfig is not None:
        # kopf logs in through the kubernetes client's loader, which reads KUBECONFIG.
        os.environ["KUBECONFIG"] = str(kubeconfig)
    try:
        settings = load_settings(os.environ)
    except SettingsError as error:
        _fail(error.problems)
        return
    from cloudkit.operator.startup import StartupError, check_aap

    try:
        asyncio.run(check_aap(settings))
        from cloudkit.operator.shell import LeadershipLost, operate

        asyncio.run(operate(settings, kubeconfig))
    except StartupError as error:
        _fail([str(error)])
    except LeadershipLost as error:
        # Non-zero as controller-runtime's managers: the platform restarts a fresh standby.
        print(f"cloudkit operator: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_LEADERSHIP_LOST) from None
