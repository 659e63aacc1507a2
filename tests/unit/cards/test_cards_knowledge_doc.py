"""The rendered knowledge base the README links for clinical reviewers matches the packaged data."""
from pathlib import Path

from cards import knowledge_markdown, load_knowledge

DOC = Path(__file__).resolve().parents[3] / "docs" / "knowledge.md"


def test_docs_knowledge_md_is_the_current_rendering_of_the_knowledge_base():
    """Regenerate with `her2-cds knowledge > docs/knowledge.md` after editing cards/knowledge/."""
    assert DOC.read_text(encoding="utf-8").strip() == knowledge_markdown(load_knowledge()).strip()
