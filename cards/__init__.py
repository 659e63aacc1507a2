"""Clinical summary + hook context -> decisions (pure, from cited knowledge data) -> CDS Hooks cards.

Public API (used by `cds_service.pipeline`, the one caller that makes cards, and the CLI):
- `decide(summary, drafts, scope, *, knowledge, policy)` -> decisions, then
  `render_cards(decisions, summary, drafts, *, knowledge, data_gaps=(), app_launch_url=None)` -> card dicts
  (two steps, which the service times separately; `cards/api.py`)
- `CardScope(topics, draft_orders)`: what one CDS service may answer with (declared with the services, in
  `cds_service/services.py`)
- `load_knowledge(path=None)` -> `Knowledge` (validated YAML, cached per path)
- `Policy(tfi_policy=None (the knowledge default), list_post_seed_regimens=True)`
- `knowledge_markdown(knowledge)` -> the whole knowledge base as Markdown
- `draft_order_problems(knowledge)` -> what FHIR R4 finds wrong in the regimens' draft MedicationRequests
  (`her2-cds check-config`, the tests; never imported into a worker's hot path)
- `TOPIC_SYSTEM` - the card-topic code system on every card's `source.topic`
"""
from cards.api import CardScope, decide, render_cards
from cards.knowledge_base import Knowledge, KnowledgeError, load_knowledge, parse_knowledge
from cards.markdown_doc import knowledge_markdown
from cards.policy import Policy
from cards.render import draft_order_problems
from cards.topics import TOPIC_SYSTEM

__all__ = ["CardScope", "Knowledge", "KnowledgeError", "Policy", "TOPIC_SYSTEM", "decide", "draft_order_problems",
           "knowledge_markdown", "load_knowledge", "parse_knowledge", "render_cards"]
