"""The data contract: the vocabulary (columns, reasons), the warehouse layout, the row schemas
(pandera) and the manifest (pydantic) that every stage and every reader shares.

May import `errors` only.
"""
