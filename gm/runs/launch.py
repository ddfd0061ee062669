"""``--nproc N``: the shorthand that starts torchrun for you (no launcher of gm's own).

``python -m gm train vae --nproc 2 ...`` becomes
``python -m torch.distributed.run --standalone --nproc_per_node 2 -m gm train vae ...``: torchrun
then starts the processes, and each one runs the command without ``--nproc``.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from gm.errors import GMError

MAX_NPROC = 256


def check_nproc(nproc: int) -> int:
    if not 1 <= nproc <= MAX_NPROC:
        raise GMError(f"--nproc must be between 1 and {MAX_NPROC}; got {nproc}.")
    return nproc


def without_nproc(argv: list[str]) -> list[str]:
    """argv with every ``--nproc N`` / ``--nproc=N`` removed."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        out.append(arg)
    return out


def torchrun_command(nproc: int, argv: list[str], *, standalone: bool = True) -> list[str]:
    """The torchrun command line that runs ``python -m gm <argv>`` on `nproc` processes here."""
    cmd = [sys.executable, "-m", "torch.distributed.run"]
    if standalone:
        cmd.append("--standalone")
    return cmd + [f"--nproc_per_node={check_nproc(nproc)}", "-m", "gm", *without_nproc(argv)]


def exec_torchrun(nproc: int, argv: list[str]) -> NoReturn:
    """Replace this process with torchrun running the same gm command on `nproc` processes (so
    Ctrl-C and SIGTERM reach torchrun, which passes them to every process)."""
    cmd = torchrun_command(nproc, argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)
