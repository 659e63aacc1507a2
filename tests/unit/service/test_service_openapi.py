"""The OpenAPI document states each hook's prefetch failure policy, from the service declarations."""
from __future__ import annotations

import pytest

from cds_service.openapi import build_document
from cds_service.services import SERVICES


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
def test_each_hook_operation_names_every_prefetch_keys_policy_and_reason(service):
    description = build_document(SERVICES)["paths"][f"/cds-services/{service.id}"]["post"]["description"]
    for query in service.queries:
        policy = "required: the call is answered 412" if query.required else "optional: the cards name the data gap"
        assert f"- `{query.key}` ({policy}): {query.why}" in description
