"""`commwatch probe --from URL CHECK_ID --nagios`: the engine's last result as a plugin line and
exit code, and UNKNOWN with the reason for every way the engine cannot say."""

from __future__ import annotations

import asyncio
import datetime as dt

from tests.peers.pki import make_ca, make_leaf
from tests.viewer_support import (
    LOOPBACK,
    TOKENS,
    VIEWER_ENV,
    CountingPeer,
    commwatch,
    environment,
    free_port,
    running_engine,
)


def later(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


async def probe_from(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return await commwatch("probe", "--from", *args, env=env)


async def test_the_last_result_as_a_plugin_line_and_every_unknown(tmp_path):
    up, down = CountingPeer(), CountingPeer()
    await up.start()
    try:
        async with running_engine(tmp_path, {"fibre": up, "lte": down}) as engine:
            url = str(engine.url)
            token = ["--token-env", VIEWER_ENV]
            code, out, _ = await probe_from(url, "psap/fibre/port", "--nagios", *token)
            assert (code, out.split(" - ")[0]) == (0, "TCP OK")
            assert f"{up.target}: latency" in out and "| connect_ms=" in out
            code, out, _ = await probe_from(url, "psap/lte/port", "--nagios", *token)
            assert (code, out.split(" - ")[0]) == (2, "TCP CRITICAL")
            assert "refused" in out
            assert up.accepted == 1  # asked of the engine, not probed

            code, out, _ = await probe_from(url, "psap/nope/port", "--nagios", *token)
            assert code == 3
            assert out.startswith("COMMWATCH UNKNOWN - psap/nope/port: no such check")
            code, out, _ = await probe_from(url, "psap/fibre/port", "--nagios")
            assert code == 3 and out.startswith("COMMWATCH UNKNOWN - ") and " 401 " in out
            wrong = {**environment(), VIEWER_ENV: "not-the-token-" + "x" * 20}
            code, out, _ = await probe_from(url, "psap/fibre/port", "--nagios", *token, env=wrong)
            assert code == 3 and " 401 " in out
            assert "not-the-token" not in out and TOKENS[VIEWER_ENV] not in out
    finally:
        await up.stop()
    nobody = f"http://{LOOPBACK}:{free_port()}"
    code, out, _ = await probe_from(nobody, "psap/fibre/port", "--nagios")
    assert code == 3 and out.startswith(f"COMMWATCH UNKNOWN - {nobody}: cannot reach the engine")
    assert out.count("\n") == 1  # one status line, as a plugin prints


async def test_usage_errors_are_plugin_lines_too():
    code, out, _ = await probe_from("ftp://127.0.0.1:1", "a/b/c", "--nagios")
    assert code == 3 and out.startswith("COMMWATCH UNKNOWN - ") and "not an engine URL" in out
    code, out, _ = await probe_from("http://u:secret@127.0.0.1:1", "a/b/c", "--nagios")
    assert code == 3 and "secret" not in out and "password" in out
    code, out, _ = await probe_from("http://127.0.0.1:1", "a/b/c", "--token-env", "NOT_SET_4711")
    assert code == 3 and "NOT_SET_4711 is not set" in out


async def test_tls_is_verified_and_a_private_ca_is_named_with_ca_file(tmp_path):
    ca = make_ca("viewer test api ca", not_after=later(365), path_length=None)
    cert, key = make_leaf(ca, [LOOPBACK], not_after=later(60)).write(tmp_path, "api")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    up = CountingPeer()
    await up.start()
    try:
        async with running_engine(tmp_path, {"fibre": up}, tls=(cert, key, ca_file)) as engine:
            url, check = str(engine.url), "psap/fibre/port"
            assert url.startswith("https://")
            token = ["--token-env", VIEWER_ENV]
            code, out, _ = await probe_from(url, check, "--nagios", *token)
            assert code == 3 and "TLS certificate not trusted" in out and "--ca-file" in out
            code, out, _ = await probe_from(
                url, check, "--nagios", *token, "--ca-file", str(ca_file)
            )
            assert (code, out.split(" - ")[0]) == (0, "TCP OK")
    finally:
        await up.stop()


async def test_a_token_that_is_not_one_word_is_refused_unshown(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("secret-part-one\nsecret-part-two\n")
    code, out, _ = await probe_from(
        "http://127.0.0.1:1", "a/b/c", "--nagios", "--token-file", str(token_file)
    )
    assert code == 3 and "secret-part" not in out
    assert "holds spaces or characters other than printable ASCII" in out


async def test_a_result_the_engine_stopped_renewing_is_unknown(tmp_path):
    up = CountingPeer()
    await up.start()
    try:
        fast = "{interval: 200ms, timeout: 100ms, retries: 1}"
        async with running_engine(tmp_path, {"fibre": up}, schedule=fast) as engine:
            url, check = str(engine.url), "psap/fibre/port"
            token = ["--token-env", VIEWER_ENV]
            code, _, _ = await probe_from(url, check, "--nagios", *token)
            assert code == 0  # renewed every 200 ms: fresh
            status, _ = await engine.request("POST", f"/api/v1/checks/{check}/pause")
            assert status == 200
            await asyncio.sleep(1.5)  # more than 3 intervals and the timeout
            code, out, _ = await probe_from(url, check, "--nagios", *token)
            assert code == 3
            assert out.startswith(f"COMMWATCH UNKNOWN - {check}: last result is ")
            assert "paused on the engine" in out
    finally:
        await up.stop()
