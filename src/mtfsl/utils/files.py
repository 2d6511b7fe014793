"""Reading the files of a run folder or checkpoint: a damaged or truncated one is named in
one line with what to do, instead of a traceback from inside json or safetensors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mtfsl.errors import MtfslError

REMEDY = "restore it from a copy, or train the run again"


def read_json(path: Path, remedy: str = REMEDY) -> Any:
    """The JSON in ``path``; a missing, unreadable or invalid file is an ``MtfslError``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MtfslError(f"{path}: missing; {remedy}") from None
    except json.JSONDecodeError as err:
        raise MtfslError(
            f"{path}:{err.lineno}:{err.colno}: damaged, not valid JSON ({err.msg}); {remedy}"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise MtfslError(f"{path}: cannot be read ({err}); {remedy}") from None


@contextmanager
def weights_file(path: Path, remedy: str = REMEDY) -> Iterator[None]:
    """Around reading a safetensors file: a truncated or damaged one (safetensors raises its
    own error type, or an OSError) becomes one line naming the file."""
    from safetensors import SafetensorError

    try:
        yield
    except (SafetensorError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise MtfslError(f"{path}: missing; {remedy}") from None
        reason = str(err).splitlines()[0][:160]
        raise MtfslError(
            f"{path}: damaged or not a safetensors file ({reason}); {remedy}"
        ) from None
