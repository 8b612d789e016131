"""TPMNet (Keras) and its training. Importing this package imports nothing heavy;
``models.tpmnet`` and ``models.train`` need the ``train`` extra (TensorFlow)."""

# Here, not in models.tpmnet, so that ser-train can check its arguments before importing TensorFlow.
ABLATIONS = ("dwscnn", "cbam", "self_attention", "dynamic_routing")
