"""Route modules; each defines ``router`` and is included by ``create_app``."""
