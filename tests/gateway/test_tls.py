"""--tls-cert/--tls-key: bendi serves HTTPS itself, and refuses unusable certificate files before binding."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from openai import OpenAI

from bendi.cli.serving import check_tls, public_base_url
from bendi.core.errors import UserInputError
from bendi.core.settings import load_settings
from bendi.gateway.nodelay import disable_nagle
from server_process import ServerProcess, free_port


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path  # what clients trust
    cert: Path  # the server's certificate for 127.0.0.1, ::1 and localhost, signed by the CA
    key: Path
    other_key: Path  # a valid key that belongs to no certificate here


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)


def make_tls_files(directory: Path) -> TlsFiles:
    """A private CA and a server certificate it signed, the way a company's internal CA does it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bendi test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key",
                     directory / "other.key")  # fmt: skip
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(files.key, key)
    _write_key(files.other_key, ec.generate_private_key(ec.SECP256R1()))
    os.chmod(files.key, 0o600)
    return files


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def trust(tls_files: TlsFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files.ca_cert))


@pytest.fixture(scope="module")
def https_server(
    tls_files: TlsFiles, trust: ssl.SSLContext, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    args = ("--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key))
    server = ServerProcess(tmp_path_factory.mktemp("bendi-home"), free_port(), {}, args,
                           scheme="https", verify=trust)  # fmt: skip
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_health_and_models_over_https(https_server: ServerProcess, trust: ssl.SSLContext) -> None:
    assert https_server.base_url.startswith("https://")
    assert httpx.get(https_server.base_url + "/health", verify=trust).status_code == 200
    models = httpx.get(https_server.base_url + "/v1/models", verify=trust)
    assert models.status_code == 200
    assert "smollm2:135m" in [m["id"] for m in models.json()["data"]]
    # By name too: the certificate names localhost, and the Host allowlist accepts it.
    by_name = f"https://localhost:{https_server.port}/health"
    assert httpx.get(by_name, verify=trust).status_code == 200
    assert f"bendi is serving at https://127.0.0.1:{https_server.port}" in https_server.log()


def test_the_openai_client_works_over_https(https_server: ServerProcess, trust: ssl.SSLContext) -> None:
    with httpx.Client(verify=trust) as http_client:
        client = OpenAI(base_url=https_server.base_url + "/v1", api_key="bendi", http_client=http_client,
                        max_retries=0)  # fmt: skip
        assert "smollm2:135m" in [m.id for m in client.models.list().data]


def test_the_certificate_is_checked_by_clients(https_server: ServerProcess) -> None:
    with pytest.raises(httpx.ConnectError):  # not trusted without the CA: nothing silently insecure
        httpx.get(https_server.base_url + "/health")


def test_plain_http_to_the_tls_port_fails(https_server: ServerProcess, trust: ssl.SSLContext) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{https_server.port}/health", timeout=5.0)
    assert httpx.get(https_server.base_url + "/health", verify=trust).status_code == 200  # still serving


def _serve_and_fail(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bendi = Path(sys.executable).parent / "bendi"
    env = dict(os.environ, BENDI_HOME=str(home), BENDI_THREADS="2")
    return subprocess.run([str(bendi), "serve", "--port", str(free_port()), *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_a_key_that_does_not_match_the_certificate_is_refused(tls_files: TlsFiles, tmp_path: Path) -> None:
    done = _serve_and_fail(tmp_path, "--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.other_key))
    assert done.returncode == 1
    assert f"The TLS private key {tls_files.other_key} does not belong to the certificate" in done.stderr
    assert "Traceback" not in done.stderr
    assert "bendi is serving" not in done.stderr  # refused before binding


def test_a_certificate_without_a_key_is_refused(tls_files: TlsFiles, tmp_path: Path) -> None:
    done = _serve_and_fail(tmp_path, "--tls-cert", str(tls_files.cert))
    assert done.returncode == 1
    assert "--tls-cert needs --tls-key too" in done.stderr


def _settings(tmp_path: Path, cert: Path | None, key: Path | None):  # type: ignore[no-untyped-def]
    return load_settings(home=tmp_path, tls_cert=cert, tls_key=key)


def test_unusable_files_are_refused_with_a_sentence(tls_files: TlsFiles, tmp_path: Path) -> None:
    check_tls(_settings(tmp_path, tls_files.cert, tls_files.key))  # the good pair passes
    check_tls(_settings(tmp_path, None, None))
    with pytest.raises(UserInputError, match="--tls-key needs --tls-cert too"):
        check_tls(_settings(tmp_path, None, tls_files.key))
    with pytest.raises(UserInputError, match="Cannot read the TLS certificate file .*missing.pem"):
        check_tls(_settings(tmp_path, tmp_path / "missing.pem", tls_files.key))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(UserInputError, match="must be a PEM certificate"):
        check_tls(_settings(tmp_path, garbage, tls_files.key))
    # swapped files: the key given as the certificate
    with pytest.raises(UserInputError, match="Cannot use"):
        check_tls(_settings(tmp_path, tls_files.key, tls_files.cert))
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(tls_files.key.read_bytes(), password=None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"passphrase")))  # fmt: skip
    with pytest.raises(UserInputError, match="protected by a passphrase"):
        check_tls(_settings(tmp_path, tls_files.cert, encrypted))


def test_the_base_url_is_https_with_tls(tls_files: TlsFiles, tmp_path: Path) -> None:
    plain = load_settings(home=tmp_path, port=8443)
    assert public_base_url(plain) == "http://127.0.0.1:8443"
    tls = load_settings(
        home=tmp_path, port=8443, host="0.0.0.0", tls_cert=tls_files.cert, tls_key=tls_files.key
    )
    assert public_base_url(tls) == "https://127.0.0.1:8443"


def test_nodelay_reaches_the_socket_beneath_tls(tls_files: TlsFiles, trust: ssl.SSLContext) -> None:
    """uvicorn hands its protocol an SSL transport; disable_nagle must still find the TCP socket."""

    async def scenario() -> int:
        option: dict[str, int] = {}

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            disable_nagle(writer.transport)
            option["nodelay"] = writer.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            writer.close()

        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(tls_files.cert, tls_files.key)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, as uvicorn makes it
        listener.bind(("127.0.0.1", 0))
        server = await asyncio.start_server(accepted, sock=listener, ssl=server_context)
        host, port = listener.getsockname()
        reader, writer = await asyncio.open_connection(host, port, ssl=trust, server_hostname="localhost")
        await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()
        return option["nodelay"]

    assert asyncio.run(scenario()) != 0
