"""Duluan's composition root: settings, CLI, web app and service runner wire the stages together.

Stages (crawlers, nlp, index, alerts) never import this package; it imports them.
"""
