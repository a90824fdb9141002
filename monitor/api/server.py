"""The engine served over HTTP: the application, its listener, and what every route shares.

`build_app(monitor, config)` makes the aiohttp application: errors as JSON, the token check,
the body limit (`secured_app`, which an agent's own small application starts from too), the
health routes, then each module of routes in ATTACHMENTS adds its own (`attach(app, monitor,
config)`, handlers declaring their role with `@requires`). `Listener` serves an application by
the configuration's rules: it refuses, before binding anything, to listen beyond loopback
without TLS and tokens (unless allowed), and serves TLS from the configured certificate and key
files. `ApiServer` is the listener of a running `Monitor`'s application.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler

from monitor.api import control, history, metrics, stream
from monitor.api.auth import Tokens, auth_middleware
from monitor.api.errors import error_response
from monitor.api.keys import CONFIG, HEALTH_DETAILS, MONITOR
from monitor.api.metrics import METRIC_SOURCES, MetricSource
from monitor.api.roles import Role, requires
from monitor.config.api import ApiConfig, TlsFiles
from monitor.core.logs import BugLog
from monitor.core.options import OptionError, format_host_port
from monitor.engine.pipeline import Monitor

log = logging.getLogger(__name__)
_bugs = BugLog(log)

Attach = Callable[[web.Application, Monitor, ApiConfig], object]
AppMaker = Callable[[Tokens], web.Application]  # the application, given the tokens read

# The modules of routes, each adding its own to the application. A new module of endpoints is
# one entry here (docs/ARCHITECTURE.md, "Where a new X goes").
ATTACHMENTS: tuple[Attach, ...] = (control.attach, history.attach, stream.attach, metrics.attach)

# What the access log shows of a request (aiohttp logs it at INFO, COMMWATCH_LOG=INFO): the
# peer, the request line, the status, the size and the time taken; never a header, so never
# the Authorization header's token.
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'
# Headers of an HTTP error worth keeping on its JSON rendering.
_KEPT_HEADERS = ("WWW-Authenticate", "Allow", "Retry-After")
SHUTDOWN_TIMEOUT = 5.0
KEEPALIVE_TIMEOUT = 75.0  # aiohttp's default is an hour: an idle client holds its connection


class ApiStartError(Exception):
    """The API cannot start; the message says why and what to do, for the command line."""


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as `{"error": {"status", "message"}}`: HTTP errors with their message,
    anything unforeseen as a 500 that says nothing of its cause (the log has its types and
    places, never its message, which may quote what it was handling)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own errors say "404: Not Found"; ours say what is wrong.
        message = exc.reason if not exc.text or exc.text.startswith(f"{exc.status}:") else exc.text
        kept = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
        return error_response(exc.status, message, kept)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _bugs.report(f"the API's {request.method} handler", exc)
        return error_response(500, "internal error (the engine's log has the details)")


def _health(request: web.Request, status: str) -> dict[str, object]:
    details = request.app.get(HEALTH_DETAILS)
    return {"status": status, **(details() if details is not None else {})}


@requires(Role.PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    """The process serves: for a supervisor's liveness check, no token needed."""
    return web.json_response(_health(request, "ok"))


@requires(Role.VIEWER)
async def readyz(request: web.Request) -> web.Response:
    """The engine runs its checks (history and alerting started, the scheduler running)."""
    if request.app[MONITOR].ready.is_set():
        return web.json_response(_health(request, "ready"))
    return web.json_response(_health(request, "not ready"), status=503)


def secured_app(config: ApiConfig, tokens: Tokens) -> web.Application:
    """An application with what every commwatch listener has: errors as JSON, every route held
    to the role its handler declares (`tokens`), and the configured body limit."""
    return web.Application(
        middlewares=[json_errors, auth_middleware(tokens)], client_max_size=config.max_body_bytes
    )


def build_app(
    monitor: Monitor,
    config: ApiConfig,
    *,
    tokens: Tokens | None = None,
    attachments: Sequence[Attach] | None = None,
    metric_sources: Sequence[MetricSource] = (),
) -> web.Application:
    """The application serving `monitor`; `tokens` read from `config` unless given (OptionError
    when one cannot be read); `attachments` the modules of routes (default ATTACHMENTS);
    `metric_sources` families `/metrics` shows after the engine's (a central's consumer)."""
    if tokens is None:
        tokens = Tokens.read(config.tokens)
    app = secured_app(config, tokens)
    app[MONITOR] = monitor
    app[CONFIG] = config
    app[METRIC_SOURCES] = tuple(metric_sources)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for attach in ATTACHMENTS if attachments is None else attachments:
        attach(app, monitor, config)
    return app


class _WithheldErrors(web.RequestHandler):
    """The connection handler, answering what never reaches the middlewares as they would.

    aiohttp answers a request its parser refuses with the parser's message, which quotes the
    offending bytes (an Authorization header and its token among them), and logs it with that
    message. Here such a request, and a timeout, get the API's JSON error with the status's
    phrase only, and the log names the exception's type only."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        log.info(
            "refused a request from %s: %d (%s)",
            request.remote,
            status,
            "no exception" if exc is None else type(exc).__name__,
        )
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already: no error can follow it")
        response = error_response(status, HTTPStatus(status).phrase)
        response.force_close()
        return response


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context presenting the configured certificate (its chain after it); TLS 1.2
    at least, the stdlib's default ciphers."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # An encrypted key would make OpenSSL ask for a passphrase on the terminal: refuse it.
        context.load_cert_chain(files.cert_file, files.key_file, password=b"")
    except ssl.SSLError:  # before OSError, of which it is one
        raise ApiStartError(
            f"the API's certificate {files.cert_file} and key {files.key_file} cannot be "
            "used: they must be PEM, the key unencrypted and the certificate's own"
        ) from None
    except OSError as exc:
        raise ApiStartError(
            f"cannot read the API's certificate or key ({exc.strerror or exc}): "
            f"{files.cert_file}, {files.key_file}"
        ) from None
    return context


class Listener:
    """An application made by `make_app`, listening by `config`'s rules while `start()`ed,
    until `stop()`."""

    def __init__(self, config: ApiConfig, make_app: AppMaker) -> None:
        self.config = config
        self._make_app = make_app
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.port: int | None = None  # the port bound, once started

    @property
    def url(self) -> str:
        port = self.config.listen.port if self.port is None else self.port
        return f"{self.config.scheme}://{format_host_port(self.config.listen.host, port)}"

    async def start(self) -> None:
        """Listen; ApiStartError (before binding anything) when the configuration forbids it,
        a token or the certificate cannot be read, or the address cannot be bound."""
        config = self.config
        problem = config.exposure_problem()
        if problem is not None:
            raise ApiStartError(f"{problem[0]} ({problem[1]})")
        context = None if config.tls is None else tls_context(config.tls)
        try:
            tokens = Tokens.read(config.tokens)
        except OptionError as exc:
            raise ApiStartError(f"an API token cannot be read: {exc}") from None
        app = self._make_app(tokens)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        manager = runner.server
        assert manager is not None  # set up just now
        loop = asyncio.get_running_loop()

        def connection() -> _WithheldErrors:
            return _WithheldErrors(
                manager,
                loop=loop,
                access_log_format=ACCESS_LOG_FORMAT,
                keepalive_timeout=KEEPALIVE_TIMEOUT,
            )

        try:
            listener = await loop.create_server(
                connection, config.listen.host, config.listen.port, ssl=context
            )
        except OSError as exc:
            await runner.cleanup()
            raise ApiStartError(
                f"cannot listen on {config.listen}: {exc.strerror or exc}"
            ) from None
        self._runner, self._listener = runner, listener
        self.port = listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, end the open connections (SHUTDOWN_TIMEOUT at most), run the
        application's cleanup."""
        runner, listener = self._runner, self._listener
        self._runner = self._listener = None
        if listener is not None:
            listener.close()
        if runner is not None:
            await runner.cleanup()
        if listener is not None:
            await listener.wait_closed()


class ApiServer(Listener):
    """The API of one `Monitor` (`build_app`), listening while `start()`ed, until `stop()`."""

    def __init__(
        self,
        monitor: Monitor,
        config: ApiConfig,
        *,
        attachments: Sequence[Attach] | None = None,
        metric_sources: Sequence[MetricSource] = (),
    ) -> None:
        def make_app(tokens: Tokens) -> web.Application:
            return build_app(
                monitor,
                config,
                tokens=tokens,
                attachments=attachments,
                metric_sources=metric_sources,
            )

        super().__init__(config, make_app)
        self.monitor = monitor
