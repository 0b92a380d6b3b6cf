"""Fetch a profile's weights from the Hugging Face Hub into the local HF cache.

`huggingface_hub` is only in the `engine-gpu` and `fetch` extras, so it is imported when a fetch
actually happens. Downloads resume where they stopped (the hub client keeps partial files), show
tqdm progress bars, take only the profile's file patterns (safetensors, never .bin duplicates), and
with `HF_HUB_OFFLINE=1` use the local cache alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from serving.catalog.profiles import Precision, Profile
from serving.engine.settings import EngineSettings


class FetchError(RuntimeError):
    """The weights could not be fetched; the message says why and what to do."""


def fetch_weights(
    profile: Profile,
    precision: Precision,
    settings: EngineSettings,
    report: Callable[[str], None],
) -> Path:
    """Download (or find in the cache) the weights for `precision`; return the snapshot folder."""
    try:
        from huggingface_hub import errors as hub_errors
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise FetchError(
            "huggingface_hub is not installed: install the fetch extra "
            "(pip install 'serving[fetch]', or 'serving[engine-gpu]' on GPU nodes)"
        ) from exc
    weights = profile.weights_for(precision)
    if not weights.pinned:
        report(f"[fetch] warning: {weights.repo} is not pinned (revision {weights.revision!r})")
    mode = "local cache only (HF_HUB_OFFLINE=1)" if settings.hf_offline else "download/resume"
    report(f"[fetch] {weights.repo}@{weights.revision}: {mode}")
    try:
        folder = snapshot_download(
            repo_id=weights.repo,
            revision=weights.revision,
            allow_patterns=list(weights.patterns),
            token=settings.hf_token,
            local_files_only=settings.hf_offline,
        )
    except hub_errors.GatedRepoError as exc:
        raise FetchError(
            f"{weights.repo} is gated: accept its license on huggingface.co and set HF_TOKEN"
        ) from exc
    except hub_errors.LocalEntryNotFoundError as exc:
        raise FetchError(
            f"{weights.repo}@{weights.revision} is not in the local Hugging Face cache and "
            "HF_HUB_OFFLINE=1 forbids downloading: fetch it once online (unset HF_HUB_OFFLINE)"
        ) from exc
    except (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError) as exc:
        raise FetchError(f"{weights.repo}@{weights.revision} not found: {exc}") from exc
    except (hub_errors.HfHubHTTPError, OSError) as exc:
        raise FetchError(f"fetching {weights.repo} failed: {exc}") from exc
    report(f"[fetch] ready: {folder}")
    return Path(folder)
