"""The rule packs and models an admin may activate: the ones the settings start with, and one
per folder of LINDUNG_PACK_LIBRARY and LINDUNG_MODEL_LIBRARY."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.problems import NotFound
from api.settings import Settings
from engine.errors import LindungError
from engine.rule_pack import load_rule_pack
from models import artifact


def _folders(start: Path, library: Path, marker: str) -> list[Path]:
    found = [start]
    if library.is_dir():
        found += sorted(p for p in library.iterdir() if (p / marker).is_file())
    return found


def packs(settings: Settings) -> dict[str, dict[str, Any]]:
    """Pack label -> its folder and summary; a folder that does not load is listed as broken."""
    listing: dict[str, dict[str, Any]] = {}
    for folder in _folders(settings.rule_pack, settings.pack_library, "pack.yaml"):
        try:
            pack = load_rule_pack(folder)
        except LindungError as error:
            problem = public_text(settings, str(error))
            listing[f"(broken) {folder.name}"] = {"folder": folder, "problem": problem}
            continue
        listing.setdefault(
            pack.label,
            {
                "folder": folder,
                "name": pack.name,
                "version": pack.version,
                "effective_date": pack.effective_date.isoformat(),
                "rules": len(pack.rules),
            },
        )
    return listing


def models(settings: Settings) -> dict[str, dict[str, Any]]:
    """Model version -> its folder and manifest summary (nothing is unpickled here)."""
    listing: dict[str, dict[str, Any]] = {}
    for folder in _folders(settings.model_dir, settings.model_library, artifact.MANIFEST_FILE):
        try:
            manifest = json.loads((folder / artifact.MANIFEST_FILE).read_text(encoding="utf-8"))
            version = str(manifest["model"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        listing.setdefault(
            version,
            {
                "folder": folder,
                "created_at": manifest.get("created_at"),
                "thresholds": manifest.get("thresholds"),
                "training": manifest.get("training", {}).get("data"),
            },
        )
    return listing


def pack_folder(settings: Settings, label: str) -> Path:
    found = packs(settings).get(label)
    if not found or "problem" in found:
        raise NotFound(f"no rule pack {label} in the library", "rule_pack")
    folder: Path = found["folder"]
    return folder


def model_folder(settings: Settings, version: str) -> Path:
    found = models(settings).get(version)
    if not found:
        raise NotFound(f"no model {version} in the library", "model")
    folder: Path = found["folder"]
    return folder


def public(listing: dict[str, dict[str, Any]], key_name: str) -> list[dict[str, Any]]:
    """A listing without server paths, each item under `key_name` (what activation takes)."""
    return [
        {key_name: key, **{k: v for k, v in item.items() if k != "folder"}}
        for key, item in listing.items()
    ]


# a path from the root that no setting names (not the API's own, /v1/...): its last part kept
_ABSOLUTE = re.compile(r"(?<![\w.:/-])/(?!v1/)(?:[\w.@+-]+/)*([\w.@+-]+)")


def folders_named(settings: Settings) -> Callable[[str], str]:
    """A text with the server's folders named by the settings that point at them
    (LINDUNG_PACK_LIBRARY/next/rules); the folders are resolved once, here."""
    named = {
        "LINDUNG_PACK_LIBRARY": settings.pack_library,
        "LINDUNG_MODEL_LIBRARY": settings.model_library,
        "LINDUNG_RULE_PACK": settings.rule_pack,
        "LINDUNG_MODEL_DIR": settings.model_dir,
        "LINDUNG_REGISTRY": settings.registry,
        "LINDUNG_JOB_DIR": settings.job_dir,
    }
    forms = {str(form): name for name, path in named.items() for form in (path, path.resolve())}
    patterns = [  # a folder before the folders it holds
        (re.compile(rf"(?<![\w./-]){re.escape(form)}(?![\w.-])"), forms[form])
        for form in sorted(forms, key=len, reverse=True)
    ]

    def named_in(text: str) -> str:
        for pattern, name in patterns:
            text = pattern.sub(name, text)
        return text

    return named_in


def public_text(settings: Settings, text: str) -> str:
    """`text` (a problem an analyst reads) with the server's folders named by the settings that
    point at them (`folders_named`), and any other absolute path cut to its last part: where
    the server keeps its files is not for its callers."""
    return _ABSOLUTE.sub(r"\1", folders_named(settings)(text))
