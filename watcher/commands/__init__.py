"""CLI sub-commands, one module per noun (feeds, rules, stories, digest, deliveries, db)."""
