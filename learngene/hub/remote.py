"""`hf-hub:owner/name`: fetched with `huggingface_hub` (from its cache when offline), and `--push`.

Only the files the studio reads are fetched (config.json, README.md, *.safetensors), so a pickle in
the repo is never even downloaded. `HF_HUB_OFFLINE=1` makes `huggingface_hub` answer from its cache
(`$HF_HOME/hub`) alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from learngene.errors import CheckpointError, ConfigError

PREFIX = "hf-hub:"
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,199}")
ALLOW = ["config.json", "README.md", "*.safetensors"]


def parse(ref: str) -> tuple[str, str | None]:
    """`hf-hub:owner/name[@revision]` -> (repo id, revision or None); `ConfigError` for anything else."""
    body = ref.removeprefix(PREFIX)
    repo, _, revision = body.partition("@")
    if not _REPO.fullmatch(repo) or ".." in repo or (revision and (not _REVISION.fullmatch(revision) or ".." in revision)):
        raise ConfigError(f"{ref[:120]!r} is not a Hub repo; write hf-hub:OWNER/NAME (optionally @REVISION)")
    return repo, revision or None


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def fetch(ref: str) -> Path:
    """The local folder of the Hub repo `ref` (downloaded, or from the cache when offline)."""
    from huggingface_hub import constants, snapshot_download

    repo, revision = parse(ref)
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=ALLOW))
    except Exception as exc:  # huggingface_hub: LocalEntryNotFoundError, RepositoryNotFoundError, HTTP errors
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        reason = type(exc).__name__
        raise CheckpointError(
            f"hf-hub:{repo}{'@' + revision if revision else ''} is neither in the Hugging Face cache "
            f"({_cache_dir()}) nor reachable on the Hub{offline} ({reason}); fetch it once online, or pass "
            "the folder written by `learngene hub export`") from None


def push(folder: Path, repo: str) -> str:
    """Upload an exported folder to the Hub repo `repo` (created if missing); returns its URL."""
    from huggingface_hub import HfApi, constants, get_token

    repo_id, _ = parse(PREFIX + repo.removeprefix(PREFIX))
    if constants.HF_HUB_OFFLINE:
        raise ConfigError("--push needs the network, but HF_HUB_OFFLINE is set; the folder was written and can "
                          "be pushed later")
    if not get_token():
        raise ConfigError("--push needs a Hugging Face login: run `hf auth login` (or set HF_TOKEN); the folder "
                          "was written and can be pushed later")
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="Upload from Learngene Studio (learngene hub export --push)")
    except Exception as exc:  # network and permission errors of huggingface_hub
        first = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"--push to {repo_id} failed ({type(exc).__name__}: {first}); the folder was "
                              "written and can be pushed later") from None
    return f"https://huggingface.co/{repo_id}"
