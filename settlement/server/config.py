"""The server's configuration: a TOML file, then environment overrides, checked once at start.

Owns: every key ``settlement serve`` understands, its default, its environment variable, and the checks
that refuse a bad configuration before anything listens (unknown keys named with file and key, TLS files
that do not exist, mTLS missing outside dev mode). Must never hold a secret itself: a database password
belongs in ``SETTLEMENT_DATABASE_URL`` from the service manager, not in a committed file.

Precedence: built-in defaults < the file < the environment. Relative paths are taken from the working
directory ``settlement serve`` starts in, and stored absolute.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from settlement import limits
from settlement.storage.engine import sqlite_url

Kind = Literal["str", "bool", "path", "int", "float"]
DATABASE_FILE_NAME = "settlement.db"


class ConfigError(Exception):
    """A configuration the server refuses to start with; the message names the file or variable and key."""


@dataclass(frozen=True)
class ServerLimits:
    max_receive_message_bytes: int = limits.MAX_RECEIVE_MESSAGE_BYTES
    max_send_message_bytes: int = limits.MAX_SEND_MESSAGE_BYTES
    max_concurrent_rpcs: int = limits.MAX_CONCURRENT_RPCS
    processes: int = limits.SERVER_PROCESSES
    worker_threads: int = limits.SERVER_WORKER_THREADS
    group_commit_window_ms: float = limits.GROUP_COMMIT_WINDOW_MS
    keepalive_time_ms: int = limits.KEEPALIVE_TIME_MS
    keepalive_timeout_ms: int = limits.KEEPALIVE_TIMEOUT_MS
    min_client_ping_interval_ms: int = limits.MIN_CLIENT_PING_INTERVAL_MS
    max_ping_strikes: int = limits.MAX_PING_STRIKES
    drain_notice_seconds: float = limits.DRAIN_NOTICE_SECONDS
    drain_grace_seconds: float = limits.DRAIN_GRACE_SECONDS
    health_poll_interval_ms: int = limits.HEALTH_POLL_INTERVAL_MS


@dataclass(frozen=True)
class TlsFiles:
    """The server's certificate and key, and the CA whose terminal certificates are accepted."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path


@dataclass(frozen=True)
class ServerConfig:
    listen: str
    data_dir: Path
    database_url: str
    policies_dir: Path
    dev_mode: bool  # plaintext, caller named by x-dev-* metadata: never in production
    reflection: bool
    tls: TlsFiles | None  # None exactly when dev_mode
    metrics_listen: str  # "" turns the Prometheus endpoint off
    limits: ServerLimits
    source: str  # the file it came from, for messages
    share_port: bool = False  # one of several processes on the port (set by the supervisor, not a file key)


@dataclass(frozen=True)
class _Key:
    kind: Kind
    env: str
    default: object


_LIMIT_KINDS: dict[str, Kind] = {
    name: "float" if isinstance(value, float) else "int" for name, value in vars(ServerLimits()).items()
}

# (section, key) -> how to read it. The environment variable of a limit is SETTLEMENT_<KEY>.
KEYS: dict[tuple[str, str], _Key] = {
    ("server", "listen"): _Key("str", "SETTLEMENT_LISTEN", "127.0.0.1:50051"),
    ("server", "dev_mode"): _Key("bool", "SETTLEMENT_DEV_MODE", False),
    ("server", "reflection"): _Key("bool", "SETTLEMENT_REFLECTION", False),
    ("server", "policies_dir"): _Key("path", "SETTLEMENT_POLICIES", "policies"),
    ("storage", "data_dir"): _Key("path", "SETTLEMENT_DATA_DIR", "data"),
    ("storage", "database_url"): _Key("str", "SETTLEMENT_DATABASE_URL", ""),
    ("tls", "cert_file"): _Key("path", "SETTLEMENT_TLS_CERT", ""),
    ("tls", "key_file"): _Key("path", "SETTLEMENT_TLS_KEY", ""),
    ("tls", "client_ca_file"): _Key("path", "SETTLEMENT_TLS_CLIENT_CA", ""),
    ("metrics", "listen"): _Key("str", "SETTLEMENT_METRICS_LISTEN", ""),
    **{
        ("limits", name): _Key(kind, f"SETTLEMENT_{name.upper()}", getattr(ServerLimits(), name))
        for name, kind in _LIMIT_KINDS.items()
    },
}
_SECTIONS = {section for section, _ in KEYS}


def load_config(path: Path | None, environ: Mapping[str, str]) -> ServerConfig:
    """Read ``path`` (or only defaults when None), apply ``environ`` overrides, check, return."""
    source = str(path) if path is not None else "<defaults>"
    values: dict[tuple[str, str], object] = {key: spec.default for key, spec in KEYS.items()}
    if path is not None:
        values.update(_read_file(path))
    for key, spec in KEYS.items():
        raw = environ.get(spec.env)
        if raw is not None:
            values[key] = _from_environment(spec, raw)
    return _build(values, source)


def _read_file(path: Path) -> dict[tuple[str, str], object]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    found: dict[tuple[str, str], object] = {}
    for section, table in document.items():
        if section not in _SECTIONS or not isinstance(table, dict):
            raise ConfigError(f"{path}: unknown key {section!r} (sections: {', '.join(sorted(_SECTIONS))})")
        for name, value in table.items():
            spec = KEYS.get((section, name))
            if spec is None:
                raise ConfigError(f"{path}: unknown key [{section}].{name}")
            found[section, name] = _from_file(spec, value, f"{path}: [{section}].{name}")
    return found


def _from_file(spec: _Key, value: object, where: str) -> object:
    expected: dict[Kind, tuple[type, ...]] = {
        "str": (str,), "path": (str,), "bool": (bool,), "int": (int,), "float": (int, float),
    }
    if (isinstance(value, bool) and spec.kind != "bool") or not isinstance(value, expected[spec.kind]):
        raise ConfigError(f"{where} must be {_KIND_WORDS[spec.kind]}, got {value!r}")
    return float(value) if spec.kind == "float" else value  # type: ignore[arg-type]


def _from_environment(spec: _Key, raw: str) -> object:
    where = f"environment variable {spec.env}"
    if spec.kind in ("str", "path"):
        return raw
    if spec.kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where} must be true or false (1/0, yes/no), got {raw!r}")
    try:
        return int(raw) if spec.kind == "int" else float(raw)
    except ValueError:
        raise ConfigError(f"{where} must be {_KIND_WORDS[spec.kind]}, got {raw!r}") from None


_KIND_WORDS: dict[Kind, str] = {
    "str": "a string", "path": "a path string", "bool": "true or false", "int": "an integer", "float": "a number",
}


def _build(values: Mapping[tuple[str, str], object], source: str) -> ServerConfig:
    def text(section: str, key: str) -> str:
        return str(values[section, key])

    def path_of(section: str, key: str) -> Path:
        return Path(text(section, key)).expanduser().absolute()

    dev_mode = bool(values["server", "dev_mode"])
    data_dir = path_of("storage", "data_dir")
    database_url = text("storage", "database_url") or sqlite_url(data_dir / DATABASE_FILE_NAME)
    server_limits = ServerLimits(**{name: values["limits", name] for name in _LIMIT_KINDS})  # type: ignore[arg-type]
    _check_limits(server_limits, source)
    listen = _check_address(text("server", "listen"), f"{source}: [server].listen")
    metrics_listen = text("metrics", "listen")
    if metrics_listen:
        _check_address(metrics_listen, f"{source}: [metrics].listen")
    return ServerConfig(
        listen=listen,
        data_dir=data_dir,
        database_url=database_url,
        policies_dir=path_of("server", "policies_dir"),
        dev_mode=dev_mode,
        reflection=bool(values["server", "reflection"]),
        tls=_tls(values, dev_mode, source),
        metrics_listen=metrics_listen,
        limits=server_limits,
        source=source,
    )


def _tls(values: Mapping[tuple[str, str], object], dev_mode: bool, source: str) -> TlsFiles | None:
    names = ("cert_file", "key_file", "client_ca_file")
    given = {name: str(values["tls", name]) for name in names if values["tls", name]}
    if dev_mode:
        if given:
            raise ConfigError(
                f"{source}: dev_mode serves plaintext, yet [tls].{', [tls].'.join(given)} is set; "
                "set dev_mode = false to use mTLS, or remove the TLS keys"
            )
        return None
    missing = [name for name in names if name not in given]
    if missing:
        raise ConfigError(
            f"{source}: mTLS is required outside dev mode; set [tls].{', [tls].'.join(missing)} "
            f"(or {', '.join(KEYS['tls', name].env for name in missing)})"
        )
    paths = {name: Path(value).expanduser().absolute() for name, value in given.items()}
    for name, file in paths.items():
        if not file.is_file():
            raise ConfigError(f"{source}: [tls].{name}: {file} does not exist")
    return TlsFiles(**paths)


def _check_limits(server_limits: ServerLimits, source: str) -> None:
    for name, value in vars(server_limits).items():
        allowed_zero = name in ("drain_notice_seconds", "group_commit_window_ms")
        if value < 0 or (value == 0 and not allowed_zero):
            raise ConfigError(f"{source}: [limits].{name} must be {'≥ 0' if allowed_zero else '> 0'}, got {value}")


def _check_address(address: str, where: str) -> str:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{where} must be HOST:PORT (e.g. 0.0.0.0:50051 or [::]:50051), got {address!r}")
    return address
