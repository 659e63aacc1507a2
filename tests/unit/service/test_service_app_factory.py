"""The app factory's Flask: `ensure_sync` answers as Flask's own does, asking once per function."""
from __future__ import annotations

import flask
import flask.app
import pytest


def view() -> str:
    return "sync"


async def async_view() -> str:
    return "async"


class Unhashable:
    __hash__ = None   # type: ignore[assignment]

    def __call__(self) -> str:
        return "unhashable"


def test_ensure_sync_asks_flask_once_per_function(app, monkeypatch: pytest.MonkeyPatch):
    asked: list[object] = []
    real = flask.app.iscoroutinefunction
    monkeypatch.setattr(flask.app, "iscoroutinefunction", lambda func: asked.append(func) or real(func))
    assert [app.ensure_sync(view) for _ in range(3)] == [view] * 3
    assert asked == [view]


@pytest.mark.parametrize("func", [view, async_view, Unhashable()], ids=["sync", "async", "unhashable"])
def test_ensure_sync_gives_what_flask_gives(app, monkeypatch: pytest.MonkeyPatch, func):
    monkeypatch.setattr(app, "async_to_sync", lambda f: ("wrapped", f))   # (asgiref is not installed)
    expected = flask.Flask.ensure_sync(app, func)
    assert app.ensure_sync(func) == expected and app.ensure_sync(func) == expected
