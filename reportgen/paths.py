"""Image paths named in a manifest stay inside the manifest's folder.

A manifest (studies, training or reports JSONL) names image files; relative paths are read
from the manifest's folder. A path that leads out of that folder (``../``, an absolute
path elsewhere, a symlink that points out) is refused unless the user allows it
(``--allow-outside-root``): a manifest from someone else must not make the tools read, and
send to a server, files that the user did not mean to share.

    path, problem = image_path("a/b.png", root=Path("data"), allow_outside=False)
"""

from __future__ import annotations

import os
from pathlib import Path

OUTSIDE_FIX = "move the images under the manifest's folder, or pass --allow-outside-root if you trust this manifest"


def image_path(image: str, root: str | os.PathLike[str], *, allow_outside: bool = False) -> tuple[Path, str | None]:
    """(path to read, problem or None) for ``image`` named in a manifest whose folder is ``root``.

    The problem (E904) is set when the path, with every symlink followed, lies outside
    ``root`` and ``allow_outside`` is false. The message names neither the path nor the
    root's contents beyond the name given in the manifest's own field (no patient data).
    """
    base = Path(root)
    p = Path(image).expanduser()
    p = p if p.is_absolute() else base / p
    if allow_outside:
        return p, None
    try:
        real = p.resolve(strict=False)
        real_root = base.resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop
        return p, "E904 image path cannot be resolved (a symlink loop?)"
    if real != real_root and real_root not in real.parents:
        how = "an absolute path" if Path(image).expanduser().is_absolute() else (
            "a symlink" if ".." not in Path(image).parts else "'..'")
        return p, f"E904 image path leads outside the manifest's folder ({how}); {OUTSIDE_FIX}"
    return p, None


__all__ = ["OUTSIDE_FIX", "image_path"]


def not_an_image_file(path: str | os.PathLike[str]) -> str:
    """Why an image path named in a manifest cannot be read as a file: a folder is named as
    one, not reported as 'not found' (E576, E513, E705 messages)."""
    return "is a folder, not an image file" if Path(path).is_dir() else "not found"
