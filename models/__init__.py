"""TPMNet (Keras) and its training. Importing this package imports nothing heavy;
``ser_edge.models.tpmnet`` and ``ser_edge.models.train`` need the ``train`` extra (TensorFlow)."""

from importlib import resources
from pathlib import Path

# Here, not in ser_edge.models.tpmnet, so that ser-train can check its arguments before importing TensorFlow.
ABLATIONS = ("dwscnn", "cbam", "self_attention", "dynamic_routing")
# "authors": the structure of the thesis authors' notebooks (shipped); "gate": this project's first reading.
READINGS = ("authors", "gate")

# Training recipes: every value is a TrainSettings field, saved in run.json, so
# a run folder of one recipe is never resumed with another.
RECIPES = {
    # The thesis's recipe, as this project ran it until issue 11 (it under-fits).
    "thesis": {"epochs": 300, "learning_rate": 1e-3, "beta_1": 0.97, "beta_2": 0.93, "schedule": "step",
               "warmup_epochs": 0, "dropout": 0.2, "head_dropout": 0.0, "bn_momentum": 0.99,
               "standardize": False, "head_scale": 1.0, "label_smoothing": 0.0, "loss": "crossentropy",
               "augment": False},
    # Issue 11's recipe: no spatial dropout, BatchNorm momentum 0.9, standardised
    # inputs, a wider logit range, Adam's usual betas, warm-up + cosine, label
    # smoothing and SpecAugment-style masking + time shift in place of dropout.
    "converging": {"epochs": 150, "learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "schedule": "cosine",
                   "warmup_epochs": 5, "dropout": 0.0, "head_dropout": 0.0, "bn_momentum": 0.9,
                   "standardize": True, "head_scale": 20.0, "label_smoothing": 0.1, "loss": "crossentropy",
                   "augment": True},
}
SCHEDULES = ("step", "cosine")
LOSSES = ("crossentropy", "margin")
# Settings added after the first runs, written into run files only when on; absent means this value.
# Here, so that attach_cv compares recipes without importing TensorFlow.
WRITTEN_WHEN_ON = {"utterance_mean": False, "level_normalise": False, "speed_perturb": [], "init_seed": None,
                   "noise_copies": 0, "noise_snr": [], "speaker_normalise": False,
                   "speaker_reference": "all", "add_corpus": ""}


def shipped_dir() -> Path:
    """The shipped Keras models and what belongs to them: training sidecars, cards, CV and parity reports.

    Their .tflite exports live with the device package (``ser_edge.edge.registry.shipped_dir``).
    """
    return Path(str(resources.files(__name__) / "shipped"))


def sidecar_path(model_path: Path, source_file: str) -> Path:
    """A model's training sidecar (``NAME.json`` of its source ``NAME.keras``).

    Beside the model, or, for a shipped .tflite in the device package, beside its .keras here.
    """
    from ser_edge.edge import registry

    name = f"{Path(source_file).stem}.json"
    beside = Path(model_path).parent / name
    if beside.exists() or Path(model_path).resolve().parent != registry.shipped_dir().resolve():
        return beside
    return shipped_dir() / name
