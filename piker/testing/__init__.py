"""piker's pytest plugin (registered via the `pytest11` entry point).

Fixtures that give every test an isolated piker world: a private
`PIKER_CONFIG_DIR` and a free `PIKER_REGISTRY_ADDR`, so a test never
touches a user's files or daemons.
"""
from ._plugin import free_port, piker_env

__all__ = ['free_port', 'piker_env']
