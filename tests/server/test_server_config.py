"""``settlement serve`` reads a TOML file, lets the environment override it, and refuses a configuration
it cannot honour before anything listens, naming the file or variable and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_fakes import PkiFiles

from settlement import limits
from settlement.server.config import ConfigError, load_config

CONFIG_DIR = Path(__file__).parents[2] / "config"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text, encoding="utf-8")
    return path


def tls_environment(test_pki: PkiFiles) -> dict[str, str]:
    return {
        "SETTLEMENT_TLS_CERT": str(test_pki.tls.cert_file),
        "SETTLEMENT_TLS_KEY": str(test_pki.tls.key_file),
        "SETTLEMENT_TLS_CLIENT_CA": str(test_pki.tls.client_ca_file),
    }


def test_the_shipped_dev_config_is_plaintext_with_reflection_and_sqlite_under_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(CONFIG_DIR / "dev.toml", {})
    assert (config.dev_mode, config.reflection, config.tls) == (True, True, None)
    assert config.data_dir == tmp_path / "data"
    assert config.database_url == f"sqlite+pysqlite:///{tmp_path / 'data' / 'settlement.db'}"
    assert config.policies_dir == tmp_path / "policies"
    assert config.listen == "127.0.0.1:50051"
    assert config.metrics_listen == "127.0.0.1:9464"


def test_the_shipped_production_config_requires_its_tls_files(test_pki: PkiFiles) -> None:
    with pytest.raises(ConfigError, match=r"\[tls\]\.cert_file: /etc/settlement/pki/server.crt does not exist"):
        load_config(CONFIG_DIR / "production.toml", {})
    url = "postgresql://settlement:secret@db:5432/settlement"
    config = load_config(CONFIG_DIR / "production.toml", {**tls_environment(test_pki), "SETTLEMENT_DATABASE_URL": url})
    assert (config.dev_mode, config.reflection, config.database_url) == (False, False, url)
    assert config.tls == test_pki.tls
    assert config.limits.max_concurrent_rpcs == limits.MAX_CONCURRENT_RPCS


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\ndev_mode = true\nlisten = "127.0.0.1:1"\n[limits]\nworker_threads = 4\n')
    config = load_config(path, {
        "SETTLEMENT_LISTEN": "0.0.0.0:6000",
        "SETTLEMENT_DATA_DIR": str(tmp_path / "elsewhere"),
        "SETTLEMENT_POLICIES": str(tmp_path / "policies"),
        "SETTLEMENT_REFLECTION": "yes",
        "SETTLEMENT_METRICS_LISTEN": "127.0.0.1:0",
        "SETTLEMENT_WORKER_THREADS": "16",
        "SETTLEMENT_DRAIN_GRACE_SECONDS": "2.5",
    })
    assert config.listen == "0.0.0.0:6000"
    assert config.database_url.endswith(f"{tmp_path}/elsewhere/settlement.db")
    assert config.policies_dir == tmp_path / "policies"
    assert config.reflection
    assert config.metrics_listen == "127.0.0.1:0"
    assert (config.limits.worker_threads, config.limits.drain_grace_seconds) == (16, 2.5)


def test_dev_mode_can_come_from_the_environment_alone() -> None:
    assert load_config(None, {"SETTLEMENT_DEV_MODE": "1"}).dev_mode


def test_without_dev_mode_mtls_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mTLS is required.*\[tls\]\.cert_file.*SETTLEMENT_TLS_CERT"):
        load_config(None, {})


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[server]\nlisen = "127.0.0.1:1"\n', r"server.toml: unknown key \[server\]\.lisen"),
        ("[serverr]\nlisten = 1\n", r"server.toml: unknown key 'serverr'"),
        ("dev_mode = true\n", r"server.toml: unknown key 'dev_mode'"),
        ('[server]\ndev_mode = "yes"\n', r"\[server\]\.dev_mode must be true or false"),
        ("[limits]\nworker_threads = true\n", r"\[limits\]\.worker_threads must be an integer"),
        ("[server]\ndev_mode = true\n[limits]\nworker_threads = 0\n", r"\[limits\]\.worker_threads must be > 0"),
        ('[server]\ndev_mode = true\nlisten = "50051"\n', r"\[server\]\.listen must be HOST:PORT"),
        ('[server]\ndev_mode = true\n[tls]\ncert_file = "x"\n', r"dev_mode serves plaintext, yet \[tls\]\.cert_file"),
        ("[server\n", r"server.toml: not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_file_and_key(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_config(write(tmp_path, text), {})


def test_a_bad_environment_value_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="SETTLEMENT_DEV_MODE must be true or false"):
        load_config(None, {"SETTLEMENT_DEV_MODE": "maybe"})
    with pytest.raises(ConfigError, match="SETTLEMENT_MAX_CONCURRENT_RPCS must be an integer"):
        load_config(None, {"SETTLEMENT_DEV_MODE": "1", "SETTLEMENT_MAX_CONCURRENT_RPCS": "lots"})


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", {})
