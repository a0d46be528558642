"""Bound every request body, and say so as a problem document.

Starlette's own limiter answers a declared oversize Content-Length with bare text before our exception
handlers can see it, so this pure ASGI middleware sits outermost and answers both cases (declared length and
a streamed body that grows past the limit) with `application/problem+json`.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from concurrent_mlflow.server.problems import problem


class _TooLarge(HTTPException):
    """Raised from `receive`; the app's HTTP error handler turns it into the 413 problem."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Request(scope).headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received, started = 0, False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge(413, self._detail())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except* _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "too-large", "Content too large", self._detail(), scope["path"])
        await response(scope, receive, send)

    def _detail(self) -> str:
        return f"The request body is over {self.max_bytes} bytes; send a smaller document."
