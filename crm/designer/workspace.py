"""The working copy the designer edits: the processes/ and forms/ folders, read and written safely.

Names are always relative to their folder; a name that leaves the folder, or has the wrong suffix,
is refused. Writes go to a temporary file that replaces the old one, so a reader (or the next
deploy) never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from crm.designer.models import DesignerAudit
from crm.directory.models import User
from crm.errors import NotFound, msg
from engine.deploy import collect_files, folder_form_loader
from engine.deploy_checks import FormLoader


@dataclass(frozen=True)
class Workspace:
    """Where the working files live (the app's PROCESSES_DIR and FORMS_DIR)."""

    processes_dir: Path
    forms_dir: Path

    def form_loader(self) -> FormLoader:
        return folder_form_loader(self.forms_dir)

    def working_set(self) -> dict[str, bytes]:
        """Return every .bpmn and .dmn file of processes/, as a deploy reads them."""
        return collect_files([self.processes_dir]) if self.processes_dir.is_dir() else {}


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def resolve(base: Path, name: str, suffixes: tuple[str, ...], *, must_exist: bool = True) -> Path:
    """Return the file `name` below `base`.

    :raises NotFound: when the name leaves the folder, has another suffix or does not exist.
    """
    root = base.resolve()
    path = (root / name).resolve()
    if not name or not path.is_relative_to(root) or not name.endswith(suffixes):
        raise NotFound(msg("'%(name)s' is not a file the designer edits", name=name))
    if must_exist and not path.is_file():
        raise NotFound(msg("'%(name)s' does not exist", name=name))
    return path


def list_files(base: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Return the names of the files below `base` ending in one of `suffixes`, sorted."""
    if not base.is_dir():
        return []
    return sorted(
        str(path.relative_to(base))
        for path in base.rglob("*")
        if path.is_file() and path.name.endswith(suffixes)
    )


def write_file(path: Path, content: bytes) -> None:
    """Replace the file at `path` with `content` in one step."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def record_change(
    session: Session,
    actor: User,
    action: str,
    target: str,
    now: datetime,
    *,
    comment: str | None = None,
    deployment_id: int | None = None,
    **detail: Any,
) -> DesignerAudit:
    """Add one row to the designer's audit trail."""
    change = DesignerAudit(
        at=now,
        actor=actor.username,
        action=action,
        target=target,
        comment=comment,
        deployment_id=deployment_id,
        detail=detail,
    )
    session.add(change)
    session.flush()
    return change
