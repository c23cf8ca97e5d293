"""Vision projectors on the Hub: a repository's ``mmproj`` file is checked by its header (read with HTTP Range,
a few kilobytes) before it is fetched with a model quant, so a file merely named so is never paired."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from core.errors import HangarError
from core.gguf import GGUFInfo, read_gguf_hub, read_gguf_url
from core.hub.files import FileGroup, GroupKind, RemoteFile, projector_for, with_projector

if TYPE_CHECKING:
    from core.hub.client import HubClient

logger = logging.getLogger(__name__)


def is_remote_projector(hub: HubClient, repo_id: str, revision: str, remote: RemoteFile) -> bool:
    """Whether ``remote`` is a vision projector (``general.architecture = clip``)."""
    try:
        info = read_gguf_url(hub.file_url(repo_id, remote.path, revision), headers=hub.headers()[0])
    except (HangarError, OSError) as exc:
        logger.info("%s in %s is not a usable projector: %s", remote.path, repo_id, exc)
        return False
    return info.architecture == "clip"


def with_remote_projector(
    hub: HubClient, repo_id: str, revision: str, groups: list[FileGroup], group: FileGroup
) -> FileGroup:
    """``group`` with the repository's projector added when it is a real one (see ``files.with_projector``)."""
    return with_projector(groups, group, accept=partial(is_remote_projector, hub, repo_id, revision))


def remote_projector_header(
    repo_id: str, filename: str, *, revision: str | None = None, token: str | None = None
) -> GGUFInfo | None:
    """The header of the projector that goes with ``filename`` in ``repo_id`` (for the estimate), None if none."""
    from core.estimate.fitting import list_hub_files

    folder = PurePosixPath(filename).parent
    names = [n for n in list_hub_files(repo_id, revision=revision, token=token) if PurePosixPath(n).parent == folder]
    files = [RemoteFile(n, None) for n in names if "mmproj" in PurePosixPath(n).name.lower()]
    model = FileGroup(filename, filename, GroupKind.QUANT, (RemoteFile(filename, None),))
    found: list[GGUFInfo] = []

    def accept(remote: RemoteFile) -> bool:
        try:
            info = read_gguf_hub(repo_id, remote.path, revision=revision, token=token)
        except (HangarError, OSError):
            return False
        if info.architecture == "clip":
            found.append(info)
        return bool(found)

    companions = [FileGroup(f.path, f.name, GroupKind.COMPANION, (f,)) for f in files]
    projector_for([*companions, model], model, accept)
    return found[0] if found else None
