"""piker: trading gear for hackers."""
