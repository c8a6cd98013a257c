"""Convert GGUF weights once into a cached safetensors folder.

transformers dequantises a GGUF file on every load (~15 s for a 135M model on 2 CPU cores);
a converted folder loads in well under a second, which matters when a study loads the model
once per subprocess. The cache key is the GGUF file's content hash, and the folder appears
atomically (written under a temporary name, then renamed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from llenergymeasure.fileio import make_shareable
from llenergymeasure.paths import cache_dir


def file_sha256(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def converted_folder(gguf_path: Path, root: Path | None = None) -> Path:
    """Return a safetensors folder for ``gguf_path``, converting it on first use."""
    key = f"{gguf_path.stem}-{file_sha256(gguf_path)[:16]}"
    target = (root or cache_dir() / "converted") / key
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    make_shareable(staging)
    try:
        _convert(gguf_path, staging)
        os.replace(staging, target)
    except OSError:
        # Another process finished the same conversion first: use theirs.
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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
