"""Process settings from the environment, with embedded defaults under var/."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from gongji.core.identity import IdentityVault


@dataclass(frozen=True)
class Settings:
    database_url: str
    var_dir: Path
    params_dir: Path | None
    #: Where failed-login counts live (`limits` storage URI); memory:// is per process, redis://… shared.
    rate_limit_storage: str = "memory://"

    @classmethod
    def from_env(cls) -> Settings:
        var_dir = Path(os.environ.get("GONGJI_VAR_DIR", "var"))
        url = os.environ.get("GONGJI_DATABASE_URL") or f"sqlite:///{var_dir / 'gongji.sqlite3'}"
        params = os.environ.get("GONGJI_PARAMS_DIR")
        return cls(
            database_url=url,
            var_dir=var_dir,
            params_dir=Path(params) if params else None,
            rate_limit_storage=os.environ.get("GONGJI_RATE_LIMIT_STORAGE") or "memory://",
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def private_var_dir(var_dir: Path) -> None:
    """var/ holds the embedded database, the keys and the demo passwords: a 0700 folder of 0600 files.

    Creates the folder if needed and narrows what earlier versions left wider (0755, 0644).
    """
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if var_dir.stat().st_mode & 0o077:
        var_dir.chmod(0o700)
    for file in var_dir.iterdir():
        try:
            mode = file.lstat().st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                file.chmod(0o600)
        except FileNotFoundError:  # a -wal/-shm file removed meanwhile by a closing SQLite connection
            continue


def load_vault(settings: Settings) -> IdentityVault:
    """Keys from GONGJI_FIELD_KEY / GONGJI_PERSON_KEY_SECRET, else generated once into var/keys.json.

    Generated keys are for the embedded demo only; production sets both variables.
    Called at every start, so it is also where var/ is made owner-only.
    """
    field_key = os.environ.get("GONGJI_FIELD_KEY")
    person_secret = os.environ.get("GONGJI_PERSON_KEY_SECRET")
    if settings.var_dir.is_dir() or not (field_key and person_secret):
        private_var_dir(settings.var_dir)
    if not (field_key and person_secret):
        keys_file = settings.var_dir / "keys.json"
        if keys_file.exists():
            stored = json.loads(keys_file.read_text())
        else:
            stored = {
                "field_key": base64.b64encode(secrets.token_bytes(32)).decode(),
                "person_key_secret": base64.b64encode(secrets.token_bytes(32)).decode(),
            }
            fd = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(stored, handle)
        field_key = field_key or stored["field_key"]
        person_secret = person_secret or stored["person_key_secret"]
    return IdentityVault(base64.b64decode(field_key), base64.b64decode(person_secret))
