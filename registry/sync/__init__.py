"""Platform sync: the change feed, watchlists, webhooks, consistency checks."""
