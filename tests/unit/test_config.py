"""Settings from the REGISTRY_* environment: every one is checked at start."""

from __future__ import annotations

import ast
from datetime import date, time
from pathlib import Path

import pytest

from registry import create_app
from registry.config import CONFIG_KEY, ConfigError, Settings, current_settings, load_settings

BASE = {"REGISTRY_SECRET_KEY": "test-secret", "REGISTRY_DATABASE_URL": "sqlite:///:memory:"}


def load(tmp_path: Path, **env: str) -> Settings:
    """Load settings from BASE plus ``env`` (names without the REGISTRY_ prefix)."""
    return load_settings(tmp_path, {**BASE, **{f"REGISTRY_{k}": v for k, v in env.items()}})


def test_defaults_follow_the_spec(tmp_path: Path) -> None:
    s = load_settings(tmp_path, {})
    assert s.policy == "opt-in"
    assert s.default_region == "CN"
    assert s.timezone == "Asia/Shanghai"
    assert s.calling_hours == (time(8), time(21))
    assert s.require_confirmation is True
    assert s.disconnect_data_since is None
    assert s.sms_backend == "console"
    # Not the SPEC's memory:// (issue 13): limits hold across every worker of the machine.
    assert s.ratelimit_storage_url == f"sqlite:///{tmp_path / 'ratelimits.sqlite3'}"
    assert s.database_url == f"sqlite:///{tmp_path / 'registry.sqlite3'}"


def test_good_values_are_read(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        POLICY="opt-out",
        DEFAULT_REGION="us",
        TIMEZONE="America/New_York",
        CALLING_HOURS=" 09:30 - 20:00 ",
        REQUIRE_CONFIRMATION="no",
        DISCONNECT_DATA_SINCE="2024-01-01",
        SMS_BACKEND="http",
        SMS_HTTP_URL="http://127.0.0.1:9/sms",
        SMS_NUMBER="1069 0099",
        RATELIMIT_STORAGE_URL="redis://127.0.0.1:6379/0",
        RATELIMIT_CHECK="100 per second",
        RATELIMIT_STAFF_LOGIN="5 per minute",
        DATABASE_URL="postgresql://user@127.0.0.1:5432/anning",
    )
    assert (s.policy, s.default_region, s.tz.key) == ("opt-out", "US", "America/New_York")
    assert s.calling_hours == (time(9, 30), time(20))
    assert s.require_confirmation is False
    assert s.disconnect_data_since == date(2024, 1, 1)
    assert (s.sms_backend, s.sms_http_url) == ("http", "http://127.0.0.1:9/sms")
    assert s.sms_number == "10690099"
    assert s.ratelimit_check == "100 per second"
    assert s.ratelimit_staff_login == "5 per minute"
    # psycopg 3 is the driver for the libpq-style URL people copy.
    assert s.database_url == "postgresql+psycopg://user@127.0.0.1:5432/anning"


def test_calling_hours_may_wrap_midnight(tmp_path: Path) -> None:
    assert load(tmp_path, CALLING_HOURS="22:00-02:00").calling_hours == (time(22), time(2))


@pytest.mark.parametrize("value", ["true", "1", "YES", "on"])
def test_booleans_true(tmp_path: Path, value: str) -> None:
    assert load(tmp_path, REQUIRE_CONFIRMATION=value).require_confirmation is True


@pytest.mark.parametrize("value", ["false", "0", "No", "off"])
def test_booleans_false(tmp_path: Path, value: str) -> None:
    assert load(tmp_path, REQUIRE_CONFIRMATION=value).require_confirmation is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLICY", "opt_in"),
        ("POLICY", "whitelist"),
        ("DEFAULT_REGION", "XX"),
        ("DEFAULT_REGION", "China"),
        ("TIMEZONE", "Mars/Olympus_Mons"),
        ("TIMEZONE", "../../etc/passwd"),
        ("CALLING_HOURS", "8-21"),
        ("CALLING_HOURS", "08:00"),
        ("CALLING_HOURS", "08:00-21:00-22:00"),
        ("CALLING_HOURS", "25:00-08:00"),
        ("CALLING_HOURS", "08:00-08:00"),
        ("CALLING_HOURS", "08:00:30-21:00"),
        ("REQUIRE_CONFIRMATION", "maybe"),
        ("DISCONNECT_DATA_SINCE", "last year"),
        ("SMS_BACKEND", "carrier-pigeon"),
        ("SMS_NUMBER", "registry"),
        ("SMS_NUMBER", "12"),
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://user@127.0.0.1/anning"),
        ("RATELIMIT_STORAGE_URL", "bogus://127.0.0.1"),
        ("RATELIMIT_STORAGE_URL", "sqlite:///"),
        ("RATELIMIT_CHECK", "lots"),
        ("RATELIMIT_WRITE", "100 per fortnight"),
        ("RATELIMIT_CONSENT_NUMBER", "ten an hour"),
        ("RATELIMIT_STAFF_LOGIN", "thirty a minute"),
        ("DATABASE_CONNECT_TIMEOUT", "0"),
        ("DATABASE_CONNECT_TIMEOUT", "soon"),
        ("DATABASE_STATEMENT_TIMEOUT", "-5"),
        ("REPLICA_TIMEOUT", "0"),
        ("REPLICA_COMMIT_ALLOWANCE", "forever"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=f"REGISTRY_{name}"):
        load(tmp_path, **{name: value})


def test_the_http_sms_backend_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REGISTRY_SMS_HTTP_URL"):
        load(tmp_path, SMS_BACKEND="http")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://gateway/sms", "gateway:9000"])
def test_the_sms_gateway_url_must_be_http(tmp_path: Path, url: str) -> None:
    # urllib.request.urlopen would read file:// and ftp:// URLs as readily as http://.
    with pytest.raises(ConfigError, match="REGISTRY_SMS_HTTP_URL"):
        load(tmp_path, SMS_BACKEND="http", SMS_HTTP_URL=url)
    assert load(tmp_path, SMS_HTTP_URL="HTTPS://sms.example/send").sms_http_url


def test_a_database_url_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, DATABASE_URL="postgresql+psycopg2:/secret-password@")
    assert "secret-password" not in str(info.value)


def test_the_app_refuses_to_start_on_a_bad_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REGISTRY_POLICY"):
        create_app({"TESTING": True, "ENVIRON": {**BASE, "REGISTRY_POLICY": "sometimes"}})


def test_the_secret_key_is_generated_once_and_kept_in_the_instance_folder(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = {"REGISTRY_DATABASE_URL": "sqlite:///:memory:"}
    first = load_settings(instance, env).secret_key
    assert len(first) >= 32
    path = instance / "secret_key"
    assert path.read_text().strip() == first
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert [p.name for p in instance.iterdir()] == ["secret_key"]  # no temporary files left
    # A restart keeps the key, so sessions and signed receipts stay valid.
    assert load_settings(instance, env).secret_key == first
    # Another instance gets its own.
    assert load_settings(tmp_path / "other", env).secret_key != first


def test_an_empty_secret_file_is_refused_not_used(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(ConfigError, match="REGISTRY_SECRET_KEY"):
        load_settings(tmp_path, {"REGISTRY_DATABASE_URL": "sqlite://"})


def test_a_given_secret_key_wins_and_nothing_is_written(tmp_path: Path) -> None:
    env = {"REGISTRY_SECRET_KEY": "from-the-environment", "REGISTRY_DATABASE_URL": "sqlite://"}
    assert load_settings(tmp_path, env).secret_key == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()


def test_an_empty_variable_means_the_default(tmp_path: Path) -> None:
    s = load(tmp_path, POLICY="", TIMEZONE="", CALLING_HOURS="")
    assert (s.policy, s.timezone, s.calling_hours) == (
        "opt-in",
        "Asia/Shanghai",
        (time(8), time(21)),
    )


def test_operator_settings_are_read_and_checked(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path,
        {
            "REGISTRY_OPERATOR_NAME": " Example Authority ",
            "REGISTRY_OPERATOR_CONTACT": "help@example.org",
            "REGISTRY_PRIVACY_URL": "https://example.org/privacy",
        },
    )
    assert settings.operator_name == "Example Authority"
    assert settings.operator_contact == "help@example.org"
    assert settings.privacy_url == "https://example.org/privacy"
    assert load_settings(tmp_path, {}).privacy_url is None  # the registry's own page
    with pytest.raises(ConfigError, match="REGISTRY_PRIVACY_URL"):
        load_settings(tmp_path, {"REGISTRY_PRIVACY_URL": "javascript:alert(1)"})


def test_the_kannel_backend_needs_its_sendsms_url_and_user(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REGISTRY_SMS_KANNEL_URL"):
        load(tmp_path, SMS_BACKEND="kannel")
    with pytest.raises(ConfigError, match="REGISTRY_SMS_KANNEL_URL"):
        load(tmp_path, SMS_BACKEND="kannel", SMS_KANNEL_URL="file:///etc/passwd",
             SMS_KANNEL_USERNAME="anning")  # fmt: skip
    s = load(tmp_path, SMS_BACKEND="kannel", SMS_KANNEL_URL="http://127.0.0.1:13013/cgi-bin/sendsms",
             SMS_KANNEL_USERNAME="anning", SMS_KANNEL_PASSWORD="pw",
             SMS_DLR_BASE_URL="http://anning.example/", SMS_TWILIO_AUTH_TOKEN="t")  # fmt: skip
    assert (s.sms_backend, s.sms_kannel_username, s.sms_kannel_password) == (
        "kannel",
        "anning",
        "pw",
    )
    assert s.sms_dlr_base_url == "http://anning.example"
    assert s.sms_twilio_auth_token == "t"
    assert s.sms_aliyun_token is None


def test_a_multi_host_url_becomes_one_host_parameter_per_host(tmp_path: Path) -> None:
    """pg_auto_failover prints libpq's multi-host form; SQLAlchemy wants ``host`` parameters."""
    url = "postgresql://app:pw@db1:5432,db2:5433/anning?target_session_attrs=read-write"
    settings = load(tmp_path, DATABASE_URL=url)
    assert settings.database_url == (
        "postgresql+psycopg://app:pw@/anning?host=db1:5432&host=db2:5433"
        "&target_session_attrs=read-write"
    )
    one = load(tmp_path, DATABASE_URL="postgresql://db1:5432/anning").database_url
    assert one == "postgresql+psycopg://db1:5432/anning"


def test_timeouts_are_read(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        DATABASE_CONNECT_TIMEOUT="3",
        DATABASE_STATEMENT_TIMEOUT="0",
        REPLICA_TIMEOUT="0.25",
        REPLICA_COMMIT_ALLOWANCE="20",
    )
    assert settings.database_connect_timeout == 3
    assert settings.database_statement_timeout == 0
    assert settings.replica_timeout == 0.25
    assert settings.replica_commit_allowance == 20


def test_check_spool_and_sync_quorum_settings(tmp_path: Path) -> None:
    default = load_settings(tmp_path, {})
    assert (default.check_spool, default.replica_sync_quorum) == (False, 0)
    assert default.check_spool_path == str(tmp_path / "check-spool.sqlite3")
    on = load_settings(
        tmp_path,
        {
            "REGISTRY_CHECK_SPOOL": "on",
            "REGISTRY_CHECK_SPOOL_PATH": str(tmp_path / "s.db"),
            "REGISTRY_REPLICA_SYNC_QUORUM": "2",
        },
    )
    assert (on.check_spool, on.check_spool_path, on.replica_sync_quorum) == (
        True,
        str(tmp_path / "s.db"),
        2,
    )
    with pytest.raises(ConfigError, match="REGISTRY_CHECK_SPOOL"):
        load_settings(tmp_path, {"REGISTRY_CHECK_SPOOL": "sometimes"})
    with pytest.raises(ConfigError, match="REGISTRY_REPLICA_SYNC_QUORUM"):
        load_settings(tmp_path, {"REGISTRY_REPLICA_SYNC_QUORUM": "-1"})


def test_the_settings_have_one_accessor(tmp_path: Path) -> None:
    """Views, the CLI and the extensions read the settings through ``current_settings`` only."""
    url = f"sqlite:///{tmp_path}/registry.sqlite3"
    app = create_app(
        {"ENVIRON": {**BASE, "REGISTRY_DATABASE_URL": url}, "INSTANCE_PATH": str(tmp_path)}
    )
    with app.app_context():
        assert current_settings() is app.config[CONFIG_KEY]
    assert current_settings(app) is app.config[CONFIG_KEY]
    package = Path(__file__).parents[2] / "registry"
    readers = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            key = node.slice if isinstance(node, ast.Subscript) else None
            if isinstance(key, ast.Constant) and key.value == CONFIG_KEY:
                readers.append(path.relative_to(package).as_posix())
    # config.py names it CONFIG_KEY; db.py sits below config.py (config → ratelimit → db)
    # and cannot import the accessor without a cycle.
    assert sorted(set(readers)) == ["db.py"]
