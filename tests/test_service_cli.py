"""``vmimage serve`` and ``vmimage serve token create`` as an administrator runs them: the
default SQLite file with no set-up, the schema migrated, the token shown once and stored only
as its SHA-256, and one clear line (exit 2) for every unusable input."""

from __future__ import annotations

import hashlib
import socket
import stat
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.offer_support import run_cli


def test_token_create_shows_the_token_once(tmp_path: Path) -> None:
    res = run_cli("serve", "token", "create", "--publisher", "contoso", "--label", "ci",
                  env={"XDG_STATE_HOME": str(tmp_path)})
    assert res.code == 0, res.stderr
    token = res.stdout.strip()
    assert token.startswith("vmi_") and len(token) > 40 and "\n" not in token
    assert "shown this once" in res.stderr and token not in res.stderr
    database = tmp_path / "vmimage" / "service.db"  # the default: $XDG_STATE_HOME/vmimage
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT token_sha256, prefix, label FROM api_tokens")).all()
    engine.dispose()
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), token[:8], "ci")]
    for path in database.parent.iterdir():
        assert token.encode() not in path.read_bytes(), path
    key = tmp_path / "vmimage" / "service.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = run_cli("serve", "--migrate-only", "--state-dir", tmp_path / "vmimage")
    assert again.code == 0 and "schema revision 0004" in again.stdout


@pytest.mark.parametrize(("args", "problem"), [
    (("serve", "token", "create", "--publisher", "Not A Namespace"), "--publisher: "),
    (("serve", "--bind", "nonsense", "--migrate-only"), "--bind: 'nonsense' is not HOST:PORT"),
    (("serve", "--db", "mysql://u@h/db", "--migrate-only"), "--db: 'mysql' is not supported"),
    (("serve", "--db", "::not a url::", "--migrate-only"), "--db: not a database URL"),
    (("serve", "--max-body", "lots", "--migrate-only"), "--max-body"),
    (("serve", "--profile", "azure-1999", "--migrate-only"), "unknown profile"),
])
def test_unusable_input_is_one_line(tmp_path: Path, args: tuple[str, ...], problem: str) -> None:
    res = run_cli(*args, "--state-dir", tmp_path)
    assert res.code == 2, res.stdout + res.stderr
    assert problem in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr


def test_a_busy_port_and_a_shared_key_file(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = run_cli("serve", "--state-dir", tmp_path, "--bind", f"127.0.0.1:{port}")
    assert res.code == 2 and "cannot listen on 127.0.0.1" in res.stderr
    key = tmp_path / "service.key"
    key.chmod(0o644)
    res = run_cli("serve", "--state-dir", tmp_path, "--migrate-only")
    assert res.code == 2 and "readable by others" in res.stderr
    key.write_text("not a key\n")
    key.chmod(0o600)
    res = run_cli("serve", "--state-dir", tmp_path, "--migrate-only")
    assert res.code == 2 and "does not hold a key" in res.stderr


def test_push_needs_a_server_and_a_token(tmp_path: Path) -> None:
    manifest = tmp_path / "offer.yaml"
    manifest.write_text("publisher: contoso\n")
    res = run_cli("offer", "push", manifest, env={"VMIMAGE_SERVER": ""})
    assert res.code == 2 and "--server" in res.stderr
    res = run_cli("offer", "push", manifest, "--server", "http://127.0.0.1:9",
                  "--token-env", "VMIMAGE_TEST_NO_SUCH_VAR")
    assert res.code == 2 and "VMIMAGE_TEST_NO_SUCH_VAR is not set" in res.stderr
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    res = run_cli("offer", "push", manifest, "--server", f"http://127.0.0.1:{port}",
                  env={"VMIMAGE_TOKEN": "vmi_x"})
    assert res.code == 2 and "cannot reach the service" in res.stderr
    assert "vmi_x" not in res.stderr
    res = run_cli("offer", "push", manifest, "--server", "ftp://x", env={"VMIMAGE_TOKEN": "t"})
    assert res.code == 2 and "http://" in res.stderr


def test_answers_are_not_held_back_by_nagle() -> None:
    """The listening socket names TCP, so asyncio sets TCP_NODELAY on every connection
    (proto 0 does not get it: each keep-alive answer then waited for the client's delayed
    ACK, 40 ms). Checked on the server's side of a real connection."""
    import asyncio
    import socket

    from vmimage.cli.serve import _listen

    listener = _listen("127.0.0.1", 0)
    assert isinstance(listener, socket.socket) and listener.proto == socket.IPPROTO_TCP
    seen: list[int] = []

    async def main() -> None:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listener)
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen == [1]
