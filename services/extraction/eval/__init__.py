"""Quality evaluation of extraction: a small labelled set and a precision/recall script."""
