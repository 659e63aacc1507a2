"""Clinical summary + hook context -> decisions (pure, from cited knowledge data) -> CDS Hooks cards.

Public API (used by `cds_service.pipeline` and the CLI):
- `load_knowledge(path=None)` -> `Knowledge` (validated YAML, cached per path)
- `Policy(tfi_policy=None (the knowledge default), list_post_seed_regimens=True)`
- `build_cards(summary, drafts, hook, *, knowledge, policy, data_gaps=())` -> list of card dicts
  (= `render_cards(decide(...), ...)`, the two steps the service times separately)
- `knowledge_markdown(knowledge)` -> the whole knowledge base as Markdown
- `TOPIC_SYSTEM` - the card-topic code system on every card's `source.topic`
"""
from cards.build import build_cards, decide, render_cards
from cards.knowledge_base import Knowledge, KnowledgeError, load_knowledge, parse_knowledge
from cards.markdown_doc import knowledge_markdown
from cards.policy import Policy
from cards.topics import TOPIC_SYSTEM

__all__ = ["Knowledge", "KnowledgeError", "Policy", "TOPIC_SYSTEM", "build_cards", "decide", "knowledge_markdown",
           "load_knowledge", "parse_knowledge", "render_cards"]
