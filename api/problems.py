"""What a request can run into besides a bad case: each becomes one HTTP status, in one place
(`api.app`), with a body naming the problem (and the field, where there is one)."""

from __future__ import annotations

from engine.errors import LindungError


class Problem(LindungError):
    status = 400

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NotFound(Problem):
    status = 404


class Conflict(Problem):
    status = 409


class Invalid(Problem):
    status = 422


class TooLarge(Problem):
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over {limit:,} bytes", "body")


class UnsupportedMedia(Problem):
    status = 415


class Unavailable(Problem):
    status = 503
