"""Clinical summary + hook context -> decisions (pure, from cited knowledge data) -> CDS Hooks cards."""
