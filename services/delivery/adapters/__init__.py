"""Delivery's outside world: the database (`repo`) and the mail server (`smtp`). Import each from its own
module."""
