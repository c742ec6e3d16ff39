"""The state directory (``.ode`` by default): the registry's file, Pulumi's state, the stack passphrase, the
simulated engine's state. Whoever makes it first (the SQLite registry, an engine), makes it readable by its owner
only."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import OdeError


class StateDirError(OdeError):
    """The state directory cannot be made: a file in the way, a parent that is a file, no permission. One line
    naming the directory."""


def make_state_dir(state_dir: str | Path) -> Path:
    """Make ``state_dir`` (and its missing parents) if it is not there: the directory itself mode 0700 whatever
    the umask, as it holds the stack passphrase and what was deployed where. An existing directory is left as it
    is. Returns the directory."""
    path = Path(state_dir)
    try:
        if not path.is_dir():
            path.mkdir(parents=True, mode=0o700)
            os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    except FileExistsError:
        if not path.is_dir():
            raise StateDirError(f"state directory {path}: a file of that name is in the way") from None
    except NotADirectoryError:
        raise StateDirError(f"state directory {path}: a parent of it is a file, not a directory") from None
    except OSError as exc:
        raise StateDirError(f"state directory {path} cannot be created: {exc.strerror or exc}") from None
    return path
