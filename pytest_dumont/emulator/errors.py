"""The API's error answers, raised by the world and rendered by the server as Vast renders them."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer the API gives as an error: HTTP status, Vast's ``error`` code and ``msg``."""

    def __init__(self, status: int, error: str, msg: str, **extra: Any) -> None:
        super().__init__(msg)
        self.status = status
        self.error = error
        self.msg = msg
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"success": False, "error": self.error, "msg": self.msg, **self.extra}


def no_such_ask(offer_id: int) -> ApiError:
    msg = f"error 404/3603: no_such_ask Instance type by id {offer_id} is not available."
    return ApiError(404, "no_such_ask", msg, ask_id=offer_id)


def invalid_args(detail: str) -> ApiError:
    return ApiError(400, "invalid_args", f"error 400/3467: Invalid args: {detail}")
