"""ser-edge device side: audio in, numpy MFCCs, LiteRT inference, the daemon.

Nothing in this package imports TensorFlow, Keras or librosa.
"""

__version__ = "0.1.0"
