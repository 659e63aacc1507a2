"""`her2-cds serve` caps glibc's malloc arenas (HER2CDS_MALLOC_ARENAS) unless told not to or the operator did."""
from __future__ import annotations

import platform

import pytest

from cds_service.config import load_settings
from cds_service.serve import limit_malloc_arenas


def test_two_arenas_by_default():
    assert load_settings(environ={}).malloc_arenas == 2


def test_zero_leaves_glibcs_default(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas(0) is False


def test_the_operators_malloc_arena_max_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")
def test_the_cap_is_set_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas(8) is True        # glibc's own default on this size of machine: harmless here
