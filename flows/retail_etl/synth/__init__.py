"""Synthetic landing data: store files with bad rows of every kind, the same bytes for the same seed.

Sits on top: may import `io`, `core`, `contract` and `errors`; the pipeline never imports it.
"""
