"""Every configuration error is named, exits 2, and happens before any connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from vcstream.settings import ConfigError, load_settings, parse_duration
from vcstream.settings.vcenter import normalise_sdk_url


class ConnectionRecorder:
    """A TCP listener standing in for Kafka and vCenter: it counts who knocks."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def recorder() -> Iterator[ConnectionRecorder]:
    rec = ConnectionRecorder()
    yield rec
    rec.close()


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "vcstream.yaml"
    path.write_text(body)
    return path


def valid_body(port: int, password: str = "s3cret-pw") -> str:
    return f"""
kafka:
  bootstrapServers: 127.0.0.1:{port}
vcenters:
  - name: vc01
    url: https://127.0.0.1:{port}/sdk
    username: admin
    password: {password}
"""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_unknown_key_is_named_and_exits_2_without_connecting(
    tmp_path: Path, recorder: ConnectionRecorder
) -> None:
    body = valid_body(recorder.port).replace("bootstrapServers", "bootstrapServer")
    result = run_cli("config", "check", str(write_config(tmp_path, body)))
    assert result.returncode == 2
    assert "kafka.bootstrapServer: unknown key" in result.stderr
    assert recorder.accepted == 0


def test_bad_value_is_named_and_exits_2_without_connecting(
    tmp_path: Path, recorder: ConnectionRecorder
) -> None:
    body = valid_body(recorder.port) + "producer:\n  pageSize: 5000\n"
    result = run_cli("config", "check", str(write_config(tmp_path, body)))
    assert result.returncode == 2
    assert "producer.pageSize: Input should be less than or equal to 1000" in result.stderr
    assert recorder.accepted == 0


def test_missing_secret_names_the_variable_and_exits_2(
    tmp_path: Path, recorder: ConnectionRecorder
) -> None:
    body = valid_body(recorder.port, password="{fromEnv: VC01_PASSWORD}")
    env = {k: v for k, v in os.environ.items() if k != "VC01_PASSWORD"}
    result = run_cli("config", "check", str(write_config(tmp_path, body)), env=env)
    assert result.returncode == 2
    assert "vcenters[0].password: environment variable VC01_PASSWORD is not set" in result.stderr
    assert recorder.accepted == 0


def test_secret_from_file_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file-pw\n")
    body = valid_body(9092, password=f"{{fromFile: {secret_file}}}")
    monkeypatch.setenv("VCSTREAM_KAFKA__BOOTSTRAPSERVERS", "kafka.example:9093")
    settings = load_settings(write_config(tmp_path, body))
    assert settings.vcenters[0].password.get_secret_value() == "from-file-pw"
    assert settings.kafka.bootstrap_servers == "kafka.example:9093"


def test_unknown_environment_override_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VCSTREAM_KAFKA__BOOTSTRAP", "x:1")
    with pytest.raises(
        ConfigError, match=r"kafka\.bootstrap \(from VCSTREAM_KAFKA__BOOTSTRAP\): unknown key"
    ):
        load_settings(write_config(tmp_path, valid_body(9092)))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VCSTREAM_KAFKA__CLIENTPROPERTIES", "{session.timeout.ms: 6000, secret-ish}"),
        ("VCSTREAM_VCENTERS", "not-json-at-all"),
        ("VCSTREAM_SINKS", '{"knative": '),
    ],
)
def test_invalid_json_in_an_environment_variable_is_one_line_naming_it_and_exits_2(
    tmp_path: Path, recorder: ConnectionRecorder, variable: str, value: str
) -> None:
    env = {**os.environ, variable: value, "VCSTREAM_KAFKA__BOOTSTRAPSERVERS": "127.0.0.1:1"}
    result = run_cli(
        "config", "check", str(write_config(tmp_path, valid_body(recorder.port))), env=env
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()  # one line, not pydantic-settings' traceback
    assert line.startswith(f"configuration error: {variable}: not valid JSON (")
    assert value not in line  # the value may hold a secret: never echoed
    assert recorder.accepted == 0


def test_missing_secret_file_is_named(tmp_path: Path) -> None:
    body = valid_body(9092, password=f"{{fromFile: {tmp_path}/absent}}")
    with pytest.raises(ConfigError, match=r"vcenters\[0\]\.password: cannot read secret file"):
        load_settings(write_config(tmp_path, body))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid YAML \(line 3"):
        load_settings(write_config(tmp_path, "kafka:\n  bootstrapServers: [\n"))


def test_config_check_redacts_secrets(tmp_path: Path) -> None:
    result = run_cli("config", "check", str(write_config(tmp_path, valid_body(9092))))
    assert result.returncode == 0, result.stderr
    assert "s3cret-pw" not in result.stdout
    assert "password: '**********'" in result.stdout
    assert "url: https://127.0.0.1:9092/sdk" in result.stdout


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("vc.example.com", "https://vc.example.com/sdk"),
        ("https://vc.example.com/", "https://vc.example.com/sdk"),
        ("https://vc.example.com:8443/sdk", "https://vc.example.com:8443/sdk"),
        ("https://[::1]:443/sdk", "https://[::1]:443/sdk"),
    ],
)
def test_vcenter_url_is_normalised(given: str, expected: str) -> None:
    assert normalise_sdk_url(given) == expected


@pytest.mark.parametrize(
    "given",
    ["https://admin:s3cret@vc/sdk", "https://admin:s3cret@", "admin:s3cret@:443", "s3cret@"],
)
def test_vcenter_url_with_credentials_is_rejected_without_repeating_them(given: str) -> None:
    with pytest.raises(ValueError, match="must not contain credentials") as refused:
        normalise_sdk_url(given)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("given", "seconds"),
    [("PT0.2S", 0.2), ("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), (2, 2)],
)
def test_durations(given: object, seconds: float) -> None:
    assert parse_duration(given) == timedelta(seconds=seconds)


def test_bad_duration_is_named() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


@pytest.mark.parametrize(
    ("kafka", "named"),
    [
        (
            "sasl: {username: svc, password: pw}",
            "kafka: sasl is set but securityProtocol is PLAINTEXT",
        ),
        ("securityProtocol: SASL_SSL", "kafka: securityProtocol SASL_SSL needs sasl"),
        ("ssl: {caLocation: /etc/ca.pem}", "kafka: ssl is set but securityProtocol is PLAINTEXT"),
        (
            "securityProtocol: SASL_PLAINTEXT\n  sasl: {username: svc, password: pw}\n"
            "  ssl: {caLocation: /etc/ca.pem}",
            "kafka: ssl is set but securityProtocol is SASL_PLAINTEXT",
        ),
    ],
)
def test_credentials_the_security_protocol_would_ignore_are_an_error(
    tmp_path: Path, kafka: str, named: str
) -> None:
    # librdkafka ignores them: the role would connect without the login the file asks for
    with pytest.raises(ConfigError, match=named):
        load_settings(write_config(tmp_path, f"kafka:\n  {kafka}\n"))


def test_security_protocol_from_client_properties_counts(tmp_path: Path) -> None:
    body = (
        "kafka:\n  sasl: {username: svc, password: pw}\n"
        "  clientProperties: {security.protocol: sasl_ssl}\n"
    )
    assert load_settings(write_config(tmp_path, body)).kafka.sasl is not None


def test_environment_error_not_traced_to_one_variable_names_the_section() -> None:
    from pydantic_settings import SettingsError

    from vcstream.settings.root import describe_environment_error

    # no VCSTREAM_STREAMS* variable parses wrong alone: the section and the cause are named
    error = SettingsError('error parsing value for field "streams" from source "EnvSettingsSource"')
    error.__cause__ = ValueError("Expecting value")
    assert describe_environment_error(error) == "VCSTREAM_STREAMS*: Expecting value"


@pytest.mark.parametrize("sink", ["audit", "knative", "slack"])
def test_a_batch_section_keeps_the_sink_s_own_defaults_for_keys_it_does_not_name(
    sink: str,
) -> None:
    """`batch: {maxInFlight: 6}` changes that key only: the audit sink's batches stay
    2,000 records filled for up to 1 s (they became the generic 100, sent at once)."""
    from vcstream.settings import Settings
    from vcstream.settings.sinks import BatchSettings

    sections: dict[str, dict[str, Any]] = {
        "audit": {"files": {"directory": "/tmp/audit"}},
        "knative": {"url": "http://broker"},
        "slack": {"webhookUrl": "https://hooks.slack.test/x"},
    }
    plain = getattr(Settings(sinks={sink: sections[sink]}).sinks, sink).batch
    assert plain != BatchSettings()  # each of these sinks has defaults of its own
    given = {**sections[sink], "batch": {"maxInFlight": 6}}
    batch = getattr(Settings(sinks={sink: given}).sinks, sink).batch
    assert batch == plain.model_copy(update={"max_in_flight": 6})


def test_a_batch_key_that_does_not_exist_is_still_named() -> None:
    from vcstream.settings import Settings

    with pytest.raises(ValueError, match=r"batch\.maxInFlihgt"):
        Settings(sinks={"audit": {"files": {"directory": "/tmp/a"}, "batch": {"maxInFlihgt": 6}}})
