"""GGUF → Hugging Face folder for the embedded model, and what makes a conversion reproducible.

The output depends on the GGUF file, on this module's recipe (the code below and the chat
template it installs) and on the libraries that read and write the weights (transformers, gguf,
torch). All of them are recorded in the folder's manifest together with a checksum of every file
written, so a cached folder is reused only when it would come out the same today, and two
machines can compare their folders by checksum.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

# Bump when the conversion code changes what it writes.
RECIPE = 2
TOOLCHAIN = ("transformers", "gguf", "torch")
TEMPLATE_RESOURCE = "smollm2-tools.jinja"
TEMPLATE_FILE = "chat_template.jinja"


class ConversionError(RuntimeError):
    """The conversion failed; the message says why."""


def tool_chat_template() -> str:
    """SmolLM2's ChatML template with Hermes-style tool calls (shipped in the package)."""
    return resources.files("serving.engine").joinpath("templates", TEMPLATE_RESOURCE).read_text()


def recipe_id() -> str:
    template = hashlib.sha256(tool_chat_template().encode()).hexdigest()[:12]
    return f"{RECIPE}+template-{template}"


def toolchain_versions() -> dict[str, str | None]:
    """Installed versions of the libraries the conversion depends on (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in TOOLCHAIN:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What a prepared folder was made from, and a checksum of each file in it."""

    source: str  # the GGUF's file name
    source_sha256: str
    recipe: str
    versions: dict[str, str | None]
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest | None:
        """None for anything that is not a manifest this version wrote (an older cache)."""
        try:
            data: Any = json.loads(text)
            return cls(
                source=str(data["source"]),
                source_sha256=str(data["source_sha256"]),
                recipe=str(data["recipe"]),
                versions=dict(data["versions"]),
                files={str(k): str(v) for k, v in data["files"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def stale_because(self, source_sha256: str) -> str | None:
        """Why this folder would not come out the same today, or None when it would."""
        if self.source_sha256 != source_sha256:
            return "the GGUF file changed"
        if self.recipe != recipe_id():
            return f"the conversion recipe changed ({self.recipe} -> {recipe_id()})"
        current = toolchain_versions()
        changed = [
            f"{name} {self.versions.get(name)} -> {current[name]}"
            for name in TOOLCHAIN
            if self.versions.get(name) != current[name]
        ]
        return "versions changed: " + ", ".join(changed) if changed else None

    def damaged_files(self, folder: Path) -> list[str]:
        """Files that are missing or whose checksum differs (a full read: ~1 s for 270 MB)."""
        return [
            name
            for name, digest in sorted(self.files.items())
            if not (folder / name).is_file() or file_sha256(folder / name) != digest
        ]


def checksums(folder: Path, skip: set[str]) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in skip
    }


def convert(gguf: Path, out: Path) -> None:
    """Write the HF folder for `gguf` into `out`: BF16 safetensors, tokenizer, chat template."""
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
    # BF16 on disk holds the dequantized Q4_1 values exactly enough and halves the folder;
    # the engine upcasts to its own dtype at load time.
    fresh.to(dtype=torch.bfloat16)
    result = fresh.load_state_dict(loaded.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:
        raise ConversionError(f"state dict mismatch converting {name}: {result}")
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    install_chat_template(tokenizer.chat_template, out)


def install_chat_template(original: object, out: Path) -> None:
    """Install the tool-aware template as the folder's only chat template.

    It renders plain chats exactly as SmolLM2's own ChatML template does, so the GGUF must carry
    that one (a sign the file is the model we expect)."""
    if not isinstance(original, str) or "<|im_start|>" not in original:
        raise ConversionError("the GGUF carries no ChatML chat template; chat requests would fail")
    (out / TEMPLATE_FILE).write_text(tool_chat_template())
    config_path = out / "tokenizer_config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        # A template inside tokenizer_config.json would compete with the file.
        if config.pop("chat_template", None) is not None:
            config_path.write_text(json.dumps(config, indent=2) + "\n")
