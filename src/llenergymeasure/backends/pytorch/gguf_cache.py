"""Convert GGUF weights once into a cached safetensors folder, and check it before each use.

transformers dequantises a GGUF file on every load (~15 s for a 135M model on 2 CPU cores);
a converted folder loads in well under a second, which matters when a study loads the model
once per subprocess. The cache key is the GGUF file's content hash, and the folder appears
atomically (written under a temporary name, then renamed).

A cached folder can still be damaged afterwards (a copy cut short, a full disk, a hand edit).
Conversion writes :data:`CACHE_MANIFEST` into the folder: every file's size, modification time
and sha256. Before each use every file's size is compared (a stat per file, always); a file
whose modification time differs from the recorded one (something wrote it since) is hashed and
compared too, so an intact folder costs no hashing (its 0.5 GB of weights would take about a
second per process). A damaged folder, or one without a manifest (from an older llem), is
converted again, with a warning saying why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llenergymeasure.errors import BackendError, LLEMError, describe_exception
from llenergymeasure.fileio import make_shareable, write_text_atomically
from llenergymeasure.paths import cache_dir

CACHE_MANIFEST = "llem-cache.json"
"""The file, inside each converted folder, that lists its files' sizes and checksums."""

_MANIFEST_VERSION = 1

logger = logging.getLogger(__name__)


def file_sha256(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def converted_folder(gguf_path: Path, root: Path | None = None) -> Path:
    """Return a verified safetensors folder for ``gguf_path``, converting it on first use and
    again when the cached one is damaged.

    Raises:
        BackendError: the cache directory cannot be written (read-only, full, no
            permission; the message names it), or the conversion failed.
    """
    key = f"{gguf_path.stem}-{file_sha256(gguf_path)[:16]}"
    target = (root or cache_dir() / "converted") / key
    problem = damage(target)
    if problem is None:
        return target
    if target.exists():
        logger.warning("converted model cache %s is damaged (%s); converting again", target,
                       problem)  # fmt: skip
    try:
        _build(gguf_path, target, key)
    except OSError as exc:
        raise BackendError(
            f"cannot write the converted-model cache {target.parent}: "
            f"{exc.strerror or exc}; free space there, or set LLEM_CACHE_DIR to a writable "
            "directory"
        ) from None
    return target


def damage(folder: Path) -> str | None:
    """Why the converted ``folder`` cannot be used as it is, or None when it is intact.

    Sizes are always compared; a file is hashed only when its modification time differs from
    the one its manifest records, and when its content still matches, the new time is
    recorded (where the folder is writable) so the next use does not hash it again.
    """
    manifest = _read_manifest(folder)
    if isinstance(manifest, str):
        return manifest
    touched = False
    for name, recorded in manifest["files"].items():
        path = folder / name
        try:
            stat = path.stat()
            if stat.st_size != recorded["size_bytes"]:
                return f"{name} is {stat.st_size} bytes, {recorded['size_bytes']} expected"
            if stat.st_mtime_ns != recorded["mtime_ns"]:
                if file_sha256(path) != recorded["sha256"]:
                    return f"{name} does not match its checksum"
                recorded["mtime_ns"], touched = stat.st_mtime_ns, True
        except (OSError, KeyError, TypeError) as exc:
            missing = isinstance(exc, FileNotFoundError)
            return f"{name} is missing" if missing else f"{name}: {describe_exception(exc)}"
    if touched:
        with contextlib.suppress(OSError):  # a read-only cache is hashed again next time
            write_text_atomically(folder / CACHE_MANIFEST, json.dumps(manifest, indent=1))
    return None


def _read_manifest(folder: Path) -> dict[str, Any] | str:
    """The folder's manifest, or why there is no usable one."""
    try:
        manifest = json.loads((folder / CACHE_MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "missing" if not folder.exists() else f"no {CACHE_MANIFEST}"
    except (OSError, ValueError) as exc:
        return f"{CACHE_MANIFEST} unreadable: {describe_exception(exc)}"
    if (
        not isinstance(manifest, dict)
        or manifest.get("version") != _MANIFEST_VERSION
        or not isinstance(manifest.get("files"), dict)
    ):
        return f"{CACHE_MANIFEST} has an unknown format"
    return manifest


def write_manifest(folder: Path) -> None:
    """Record every file in ``folder`` (size, modification time, sha256) in its manifest."""
    files = {
        path.relative_to(folder).as_posix(): {
            "size_bytes": path.stat().st_size,
            "mtime_ns": path.stat().st_mtime_ns,
            "sha256": file_sha256(path),
        }
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != CACHE_MANIFEST
    }
    text = json.dumps({"version": _MANIFEST_VERSION, "files": files}, indent=1)
    write_text_atomically(folder / CACHE_MANIFEST, text)


def _build(gguf_path: Path, target: Path, key: str) -> None:
    """Convert into a staging folder beside ``target``, then put it in place of whatever is
    there (a damaged folder is moved aside first, so a reader never sees a half-built one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        make_shareable(staging)
        _checked(_convert, gguf_path, staging)
        write_manifest(staging)
        _discard(target)
        try:
            os.replace(staging, target)
        except OSError:
            # Another process put its conversion in place first: use theirs if it is intact.
            if damage(target) is not None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _discard(folder: Path) -> None:
    """Move ``folder`` (if there) out of the way under a hidden name, then delete it."""
    if not folder.exists():
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}-damaged-", dir=folder.parent))
    try:
        os.replace(folder, trash / folder.name)
    except FileNotFoundError:
        pass  # not there, or another process moved it first
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _checked(convert: Callable[[Path, Path], None], gguf_path: Path, out: Path) -> None:
    """Run the conversion; OSError passes (the cache's fault), the rest becomes BackendError."""
    try:
        convert(gguf_path, out)
    except (OSError, LLEMError):
        raise
    except Exception as exc:  # transformers and safetensors raise many types
        raise BackendError(
            f"converting {gguf_path} into {out.parent} failed: {describe_exception(exc)}"
        ) from None


def _convert(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The weights are already dequantised to fp32; drop the GGUF quantiser so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
