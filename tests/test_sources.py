"""Encoders from installed packages: ``pkgzip:`` joins a zip archive cut over distributions."""

import io
import zipfile
from pathlib import Path

import pytest
import torch

from mtfsl.config import ModelConfig, ModelSource
from mtfsl.errors import ConfigError
from mtfsl.model import sources
from mtfsl.model.encoder import build_encoder, tiny_tokenizer
from mtfsl.model.sources import resolve_model_path

SPEC = "pkgzip:fakemodel-part-*/tiny"


def install(site: Path, name: str, files: dict[str, bytes]) -> None:
    """Write a minimal installed distribution (dist-info with METADATA and RECORD) into site."""
    info = site / f"{name.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in files))


def tiny_archive(tmp_path: Path) -> tuple[bytes, dict[str, torch.Tensor]]:
    """A zip holding the tiny encoder and its tokenizer in the folder tiny/, and its weights."""
    encoder, tokenizer = build_encoder(ModelConfig(source=ModelSource.TINY, name_or_path="tiny"))
    folder = tmp_path / "saved"
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for file in sorted(folder.iterdir()):
            zipped.write(file, f"tiny/{file.name}")
    return buffer.getvalue(), encoder.state_dict()


def install_parts(site: Path, archive: bytes, numbers: list[int], of: int = 3) -> None:
    size = -(-len(archive) // of)
    for n in numbers:
        chunk = archive[(n - 1) * size : n * size]
        install(site, f"fakemodel-part-00{n}", {f"fakemodel_part_00{n}/input/m.zip.00{n}": chunk})


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("MTFSL_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def test_pkgzip_joins_the_parts_and_loads_the_same_weights(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, weights = tiny_archive(tmp_path)
    install_parts(site, archive, [3, 1, 2])  # install order does not matter, numbers do
    encoder, tokenizer = build_encoder(ModelConfig(name_or_path=SPEC))
    loaded = encoder.state_dict()
    assert loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)
    assert tokenizer("Rome").input_ids == tiny_tokenizer()("Rome").input_ids
    folder = Path(resolve_model_path(SPEC))
    assert folder.parent == tmp_path / "cache" / "models" and folder.name.startswith("tiny-")
    assert not [p for p in folder.parent.iterdir() if p != folder]  # no temporary leftovers

    def unpack_again(*args: object) -> None:
        raise AssertionError("unpacked a second time")

    monkeypatch.setattr(sources, "_unpack", unpack_again)
    assert resolve_model_path(SPEC) == str(folder)  # the cached folder is reused


def test_a_missing_part_is_named(site: Path, tmp_path: Path) -> None:
    archive, _ = tiny_archive(tmp_path)
    install_parts(site, archive, [1, 3])
    with pytest.raises(ConfigError, match=r"numbered 1 to 3 once each; missing \[2\]"):
        resolve_model_path(SPEC)


def test_no_matching_distribution(site: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.name_or_path=pkgzip:fakemodel-part-\*/tiny: no installed distribution's "
        r"name matches 'fakemodel-part-\*'",
    ):
        resolve_model_path(SPEC)


def test_a_folder_the_archive_lacks_is_named(site: Path, tmp_path: Path) -> None:
    archive, _ = tiny_archive(tmp_path)
    install_parts(site, archive, [1, 2, 3])
    with pytest.raises(ConfigError, match=r"no folder 'other' \(its top-level entries: \['tiny'\]"):
        resolve_model_path("pkgzip:fakemodel-part-*/other")
    assert not list((tmp_path / "cache" / "models").iterdir())  # nothing half-written


def test_a_damaged_part_is_reported(site: Path, tmp_path: Path) -> None:
    archive, _ = tiny_archive(tmp_path)
    install_parts(site, archive[:-100], [1, 2, 3])  # the central directory is cut off
    with pytest.raises(ConfigError, match=r"the 3 joined parts are not a valid zip archive"):
        resolve_model_path(SPEC)


def test_malformed_spec() -> None:
    with pytest.raises(ConfigError, match=r"expected pkgzip:DISTRIBUTIONS/FOLDER"):
        resolve_model_path("pkgzip:fakemodel-part-*")
