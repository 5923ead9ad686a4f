"""Process settings from the environment, with embedded defaults under var/."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from gongji.core.identity import IdentityVault


@dataclass(frozen=True)
class Settings:
    database_url: str
    var_dir: Path
    params_dir: Path | None

    @classmethod
    def from_env(cls) -> Settings:
        var_dir = Path(os.environ.get("GONGJI_VAR_DIR", "var"))
        url = os.environ.get("GONGJI_DATABASE_URL") or f"sqlite:///{var_dir / 'gongji.sqlite3'}"
        params = os.environ.get("GONGJI_PARAMS_DIR")
        return cls(database_url=url, var_dir=var_dir, params_dir=Path(params) if params else None)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def load_vault(settings: Settings) -> IdentityVault:
    """Keys from GONGJI_FIELD_KEY / GONGJI_PERSON_KEY_SECRET, else generated once into var/keys.json.

    Generated keys are for the embedded demo only; production sets both variables.
    """
    field_key = os.environ.get("GONGJI_FIELD_KEY")
    person_secret = os.environ.get("GONGJI_PERSON_KEY_SECRET")
    if not (field_key and person_secret):
        keys_file = settings.var_dir / "keys.json"
        if keys_file.exists():
            stored = json.loads(keys_file.read_text())
        else:
            settings.var_dir.mkdir(parents=True, exist_ok=True)
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
