"""Atelier's web pages: the Vary (Region) editor and the gallery, on the bot's one HTTP
server (`[http] public_url`).

Nobody logs in: each page is reached through a signed link that the bot gave one member
privately in Discord (see `signing.py`), bound to that member and to one job (or their
gallery), and short-lived. Templates are Jinja2 with autoescape; the one script is a
static file served by the bot; every answer carries a strict Content-Security-Policy.
"""
