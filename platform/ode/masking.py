"""The one way a secret value is shown: ``[secret]``, in plans, diffs, outputs, reports and the registry alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: What a secret value is shown as, wherever a value could otherwise be printed or written.
SECRET_MASK = "[secret]"


def mask(outputs: Mapping[str, Any], secret: Iterable[str]) -> dict[str, Any]:
    """Outputs with every secret one replaced by :data:`SECRET_MASK`."""
    hidden = set(secret)
    return {k: (SECRET_MASK if k in hidden else v) for k, v in outputs.items()}
