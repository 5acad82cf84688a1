"""State left by a killed run (pid files of dead processes, etcd data, stray processes): found and removed."""

from __future__ import annotations

import shutil

from .components import COMPONENTS
from .config import Config, read_state
from .messages import ClusterError, say
from .processes import live_pid, scan_processes, stop_pids


def find_stale(cfg: Config) -> str | None:
    """A one-line description if cluster_dir holds state from a run none of whose processes is alive."""
    d = cfg.cluster_dir
    if not d.is_dir() or not any(d.iterdir()):
        return None
    if read_state(cfg).get("mode") == "kind":
        return None
    if any(live_pid(cfg, n) for n in COMPONENTS) or scan_processes(d):
        return None
    dead = sorted(p.stem for p in cfg.pids.glob("*.pid")) if cfg.pids.is_dir() else []
    what = []
    if dead:
        what.append(f"pid files of dead processes ({', '.join(dead)})")
    if cfg.etcd_data.exists():
        what.append("etcd data")
    if not what:
        what.append("files")
    return f"stale state in {d} from a previous run ({' and '.join(what)}, no component running)"


def clean_stale(cfg: Config) -> None:
    stale = find_stale(cfg)
    if stale:
        say(f"found {stale}; removing it and starting fresh")
        shutil.rmtree(cfg.cluster_dir)
        return
    if not cfg.cluster_dir.is_dir():
        return
    known = {pid for n in COMPONENTS if (pid := live_pid(cfg, n)) is not None}
    strays = [pid for pid in scan_processes(cfg.cluster_dir) if pid not in known]
    if strays:
        say(f"stopping {len(strays)} process(es) of this cluster dir without pid files: {strays}")
        left = stop_pids(strays, cfg.cluster_dir)
        if left:
            raise ClusterError(f"could not stop stray processes {left}; kill them and retry")
