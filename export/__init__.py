"""Keras -> TFLite conversion with embedded metadata and a parity report (needs the ``train`` extra)."""
