"""``ser-bench``: per-utterance latency (and, where labels match, accuracy) runs at batch 1.

ser-bench's modules, one job each: ``cli`` (arguments, order of work), ``run`` (the timed
LiteRT pipeline), ``stats`` (percentiles, WAR/UAR in numpy), ``host`` (what
the run ran on), ``report`` (JSON, Markdown, CSV), ``plot`` (PNG) and
``keras_baseline`` (the thesis's librosa + Keras stack; the only module that
imports TensorFlow or librosa, and only when ``--baseline keras`` is given).
"""
