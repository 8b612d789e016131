"""TPMNet (Keras) and its training. Importing this package imports nothing heavy;
``models.tpmnet`` and ``models.train`` need the ``train`` extra (TensorFlow)."""
