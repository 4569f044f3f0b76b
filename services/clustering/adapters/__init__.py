"""Clustering's outside world: the vector store (`index`) and the database (`repo`). Import each from its own
module."""
