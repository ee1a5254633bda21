"""Request bodies of the participant API: JSON with a size and a nesting-depth limit, errors as JSON 4xx.

Every JSON body is read through ``request_json`` (Flask) or ``decode_json`` (the WSGI fast path), so a
malformed one is refused the same way everywhere, with a stable code (docs/server_api.md):

===============================  ======  =====================================================================
request_entity_too_large  413     more than ``JSON_MAX_BYTES`` (default 64 KiB), declared or chunked
bad_request               400     not UTF-8, or not JSON (the code every other malformed body gets)
json_too_deep             400     arrays/objects nested more than ``JSON_MAX_DEPTH`` (default 16) deep
========================  ======  =====================================================================

An answer is < 1 KB and 3 levels deep, so the limits leave a wide margin and cost nothing on the hot path
(the depth walk runs only when the body has more brackets than the limit).
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from study_server.core.errors import ApiError

DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_MAX_DEPTH = 16
_DECODER = json.JSONDecoder()
_NO_BODY = object()
_KEY = "emostudy.json_body"


class BodyTooLarge(ApiError):
    status = 413


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge("request_entity_too_large", f"the request body is larger than {limit} bytes; an answer is "
                        "well under 1 KB - send one JSON object per request")


def limits(config: Any) -> tuple[int, int]:
    """(JSON_MAX_BYTES, JSON_MAX_DEPTH) of an app's config."""
    return (int(config.get("JSON_MAX_BYTES", DEFAULT_MAX_BYTES)),
            int(config.get("JSON_MAX_DEPTH", DEFAULT_MAX_DEPTH)))


def decode_json(raw: bytes, *, max_bytes: int, max_depth: int) -> Any:
    """The JSON value of ``raw``; ``ApiError`` (400/413, codes above) when it is not one within the limits."""
    if len(raw) > max_bytes:
        raise too_large(max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("bad_request", f"the request body is not UTF-8 (byte {exc.start}); send JSON text",
                       status=400) from None
    # Nesting depth is at most the number of brackets: only a body with many of them needs the walk.
    deep = text.count("[") + text.count("{") > max_depth
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except ValueError as exc:
        raise ApiError("bad_request", f"the request body is not valid JSON ({exc})", status=400) from None
    if deep and depth(value) > max_depth:
        raise _too_deep(max_depth)
    return value


def _too_deep(max_depth: int) -> ApiError:
    return ApiError("json_too_deep", f"the JSON body nests more than {max_depth} levels deep", status=400)


def depth(value: Any) -> int:
    """Nesting depth of arrays and objects (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def read_body(max_bytes: int) -> bytes:
    """The request body, at most ``max_bytes`` (declared length or chunked); 413 ``body_too_large`` beyond."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise too_large(max_bytes)
    try:
        raw = request.stream.read(max_bytes + 1)
    except RequestEntityTooLarge:
        raise too_large(max_bytes) from None
    if len(raw) > max_bytes:
        raise too_large(max_bytes)
    return raw


def request_json(empty: Any = None) -> Any:
    """This request's JSON body (read and parsed once per request): ``empty`` when there is no body, None
    for a body not declared as JSON (the callers refuse it as a bad request), else the decoded value.
    A refused body raises the same ``ApiError`` on every call."""
    # Kept on the request (not on ``g``: an app context, and its ``g``, may outlive many requests).
    cached = request.environ.get(_KEY, _NO_BODY)
    if cached is _NO_BODY:
        max_bytes, max_depth = limits(current_app.config)
        try:
            raw = read_body(max_bytes)
            cached = (_NO_BODY if not raw else
                      decode_json(raw, max_bytes=max_bytes, max_depth=max_depth) if request.is_json else None)
        except ApiError as exc:
            cached = exc
        request.environ[_KEY] = cached
    if isinstance(cached, ApiError):
        raise cached
    return empty if cached is _NO_BODY else cached


def peek_json() -> Any:
    """``request_json()`` or None when the body is refused (for the rate limiter, which must not raise)."""
    try:
        return request_json()
    except ApiError:
        return None
