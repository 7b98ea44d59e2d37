"""Sales and cash targets per company, territory, team and rep, decomposed top-down."""
