"""The numbers the two papers report, to show beside ours (never used for computing).

Sources: ProgNet (2020) Tables I and II; Islam, Islam & Asraf (2020) Tables 3, 4 and 5.
Rates and scores are fractions (0.9381 for 93.81 %).
"""
from __future__ import annotations

import pandas as pd

#: The papers' settings: the source of ``prognet.Config``/``detector.Config`` defaults and
#: of ``cxr batch --profile paper``. ``image_size`` is the backbones' ImageNet input size.
#: How the two papers are named in tables.
PAPER_TITLES = {"prognet": "ProgNet", "detector": "CNN-LSTM detector"}

PROGNET_SETUP = {
    "patients": 42, "train_sequences": 34, "test_sequences": 8, "seq_len": 3, "runs": 10,
    "image_size": 224,
    "optimizer": "Adam", "learning_rate": 1e-4, "weight_decay": 1e-4, "batch_size": 32,
    "epochs": 60, "lstm_units": 150, "dropout": 0.5, "dense_units": (1024, 500, 128, 64),
}

# Table I: the TP/FN/FP/TN "rates" as printed. Table II: mean and std over 10 runs.
PROGNET_TABLE_I_NOTE = (
    "In every row of ProgNet's Table I, TP% + FP% = 100 and FN% + TN% = 100. Two readings "
    "fit: the rates are shares of each *predicted* class (TP% = TP/(TP+FP), TN% = "
    "TN/(TN+FN)), or the FN and FP headers are swapped (TP% = TP/(TP+FN), the sensitivity, "
    "and TN% the specificity). The paper never says which class is positive: 'positive or "
    "negative evolution' suggests survival, and 'by enjoying the lowest FN ... not miss "
    "negative evolution cases' suggests death. Our tables therefore name the class each rate "
    "is about and show the paper's numbers under both readings and both positive classes.")
PROGNET = {
    "alexnet": {"tp_rate": 0.8837, "fn_rate": 0.1196, "fp_rate": 0.1163, "tn_rate": 0.8804,
                "accuracy": (0.888, 0.08), "precision": (0.883, 0.05), "recall": (0.880, 0.09),
                "f1": (0.881, 0.06)},
    "vgg16": {"tp_rate": 0.9014, "fn_rate": 0.0879, "fp_rate": 0.0986, "tn_rate": 0.9121,
              "accuracy": (0.905, 0.03), "precision": (0.90, 0.02), "recall": (0.911, 0.05),
              "f1": (0.905, 0.03)},
    "vgg19": {"tp_rate": 0.9190, "fn_rate": 0.0789, "fp_rate": 0.081, "tn_rate": 0.9211,
              "accuracy": (0.923, 0.04), "precision": (0.91, 0.03), "recall": (0.920, 0.06),
              "f1": (0.914, 0.04)},
    "resnet50": {"tp_rate": 0.9381, "fn_rate": 0.0599, "fp_rate": 0.0619, "tn_rate": 0.9401,
                 "accuracy": (0.924, 0.03), "precision": (0.930, 0.02), "recall": (0.939, 0.04),
                 "f1": (0.934, 0.02)},
}

DETECTOR_SETUP = {
    "images": {"covid19": 141, "pneumonia": 140, "normal": 140}, "image_size": 224,
    "split": "85/15, 5-fold cross-validation", "test_fraction": 0.15, "folds": 5,
    "test_images": 64, "test_covid19": 22,
    "learning_rate": 1e-4, "max_epochs": 200,
}

# Table 3 / Table 4: per class (COVID-19, pneumonia, normal). The paper repeats the overall
# accuracy in each class's row; ours are per-class one-vs-rest, so only the overall one is
# compared.
DETECTOR = {
    "cnn": {"accuracy": 0.94, "misclassified": 4,
            "specificity": {"covid19": 0.96, "pneumonia": 0.95, "normal": 0.91},
            "sensitivity": {"covid19": 1.00, "pneumonia": 0.86, "normal": 0.95},
            "f1": {"covid19": 0.98, "pneumonia": 0.90, "normal": 0.93}},
    "cnn_lstm": {"accuracy": 0.97, "misclassified": 2,
                 "specificity": {"covid19": 0.91, "pneumonia": 1.00, "normal": 1.00},
                 "sensitivity": {"covid19": 1.00, "pneumonia": 1.00, "normal": 0.90},
                 "f1": {"covid19": 1.00, "pneumonia": 0.95, "normal": 0.95}},
}
DETECTOR_NOTES = {
    "cnn_lstm": (
        "No confusion matrix of the 64 test images reproduces all of Table 4: the best leave "
        "out two entries that look swapped (``compare.published_families``). Read as true "
        "specificity, the COVID-19 row is impossible: with all 22 COVID-19 test images found "
        "(sensitivity 1.00), F1 = 1.00 needs no false COVID-19 call, while specificity 0.91 "
        "means about 4 of the 42 others were called COVID-19, and 2 errors in 64 allow at "
        "most 2."),
    "cnn": (
        "The column printed 'specificity' is precision: read so, one confusion matrix of the "
        "64 test images reproduces every entry of Table 3 (``compare.published_confusions``); "
        "read as specificity, none does."),
}
# Table 5: accuracy of other COVID-19 X-ray classifiers, as the detector paper lists them.
LITERATURE = [
    ("Loey et al.", "GoogLeNet", 0.806),
    ("Khan et al.", "CoroNet (Xception)", 0.895),
    ("Hemdan et al.", "VGG19", 0.900),
    ("Rahimzadeh et al.", "Xception + ResNet50V2", 0.914),
    ("Apostolopoulos et al.", "VGG19", 0.935),
    ("Alqudah et al.", "AOCT-NET", 0.952),
    ("Kumar et al.", "ResNet50 + SVM", 0.954),
    ("Islam et al. (the paper)", "CNN-LSTM", 0.970),
]


PROGNET_TABLE_II = ("accuracy", "precision", "recall", "f1")


def prognet_row(backbone: str) -> dict:
    """The paper's Table I rates and Table II means for one backbone (flat dict)."""
    row = PROGNET[backbone]
    return {k: (v[0] if isinstance(v, tuple) else v) for k, v in row.items()}


def detector_table(model: str) -> pd.DataFrame:
    """The paper's per-class table for ``cnn`` or ``cnn_lstm`` (rows = classes)."""
    entry = DETECTOR[model]
    return pd.DataFrame({k: entry[k] for k in ("specificity", "sensitivity", "f1")})


def literature_table() -> pd.DataFrame:
    """The detector paper's Table 5 as a DataFrame."""
    return pd.DataFrame(LITERATURE, columns=["study", "model", "accuracy"])


# --------------------------------------------------------------------------- claims
#: What a claim is about, and so which runs can test it (``CLAIMS[...]["setup"]``):
SETUPS = {
    "paper": "the paper's own network and weights: judged only on runs of that setup (ProgNet: "
             "a pretrained CNN, ImageNet weights by our reading, or a pretrained weights file; "
             "the detector: Table 2's network trained end to end)",
    "data": "what this data set allows: any pipeline trained on it tests the claim",
}
#: ProgNet's Table I read two ways (both fit TP% + FP% = 100): the columns are shares of
#: each predicted class, or the FN and FP headers are swapped (so TP% is the sensitivity and
#: TN% the specificity). For each reading, the two of our metrics its "FN" and "FP" columns
#: are one minus (which class is positive does not matter: each pair covers both classes).
TABLE_I_READINGS = {
    "predicted_shares": {"title": "shares of each predicted class",
                         "metrics": ("precision", "npv")},
    "swapped_headers": {"title": "FN and FP headers swapped (sensitivity and specificity)",
                        "metrics": ("tp_rate", "tn_rate")},
}

#: Every claim of the two papers that this reproduction tests, written down once. Each is
#: a dict: ``key``; ``paper`` ("prognet" | "detector"); ``claim`` (the paper's words or a
#: close paraphrase); ``source`` (where the paper makes it); ``test`` (what
#: ``cxrlib.verdict`` computes: "value" = our estimate against the paper's number, "order"
#: = a paired difference that must be > 0, "above" = our interval against a bar, "lungs"
#: = the shortcut audit); the subjects and metric it needs; ``setup`` (``SETUPS``): which
#: runs can test it (runs of another setup still show their numbers, as "not testable
#: here"); ``why_setup``: the reason for that choice, shown in chapter 4.
_PAPER_NETWORK = ("the claim is about the paper's own network: another feature extractor "
                  "(random weights, another base) says nothing about it either way")
CLAIMS: tuple[dict, ...] = (
    *({"key": f"prognet.accuracy.{b}", "paper": "prognet", "test": "value",
       "claim": f"{title} reaches accuracy {PROGNET[b]['accuracy'][0]:.3f}",
       "source": "Table II", "backbone": b, "metric": "accuracy",
       "target": PROGNET[b]["accuracy"][0], "setup": "paper",
       "why_setup": "a published accuracy of a named network with pretrained weights"}
      for b, title in (("resnet50", "ProgNet (ResNet50)"), ("alexnet", "AlexNet"),
                       ("vgg16", "VGG16"), ("vgg19", "VGG19"))),
    {"key": "prognet.outperforms", "paper": "prognet", "test": "order", "metric": "accuracy",
     "claim": "ProgNet (ResNet50) outperforms AlexNet, VGG16 and VGG19",
     "source": "Table II, Section IV-B", "better": "resnet50",
     "worse": ("alexnet", "vgg16", "vgg19"), "setup": "paper",
     "why_setup": "a ranking of pretrained CNNs: random CNNs rank differently"},
    *({"key": f"prognet.lowest_fn_fp.{reading}", "paper": "prognet", "test": "order",
       "claim": f"ProgNet has the lowest FN and FP rates (Table I read as {spec['title']})",
       "source": "Table I, Section IV-B", "metric": spec["metrics"], "better": "resnet50",
       "worse": ("alexnet", "vgg16", "vgg19"), "setup": "paper", "reading": reading,
       "why_setup": "a ranking of pretrained CNNs; Table I has two readings, each judged"}
      for reading, spec in TABLE_I_READINGS.items()),
    {"key": "prognet.series_beats_last_image", "paper": "prognet", "test": "order",
     "claim": "the series of X-rays beats a single image (implicit in using a sequence)",
     "source": "the method", "metric": "accuracy", "better": "resnet50",
     "worse": ("last_image",), "setup": "paper",
     "why_setup": "what ProgNet's LSTM gains over its own last image's features: with "
                  "random-CNN features the LSTM on ~26 patients may fail for reasons that "
                  "are not about the series"},
    {"key": "prognet.beats_majority", "paper": "prognet", "test": "order",
     "claim": "the model beats predicting the majority class (implicit in every number)",
     "source": "the method", "metric": "accuracy", "better": "resnet50",
     "worse": ("majority",), "setup": "paper",
     "why_setup": "implicit in ProgNet's own numbers: whether a model on other features "
                  "beats the majority says nothing about ProgNet's"},
    {"key": "detector.accuracy.cnn_lstm", "paper": "detector", "test": "value",
     "claim": f"the CNN-LSTM reaches accuracy {DETECTOR['cnn_lstm']['accuracy']:.2f}",
     "source": "Table 4", "model": "cnn_lstm", "metric": "accuracy",
     "target": DETECTOR["cnn_lstm"]["accuracy"], "setup": "paper",
     "why_setup": "a published accuracy of Table 2's network"},
    {"key": "detector.accuracy.cnn", "paper": "detector", "test": "value",
     "claim": f"the CNN reaches accuracy {DETECTOR['cnn']['accuracy']:.2f}",
     "source": "Table 3", "model": "cnn", "metric": "accuracy",
     "target": DETECTOR["cnn"]["accuracy"], "setup": "paper",
     "why_setup": "a published accuracy of Table 2's network"},
    {"key": "detector.outperforms", "paper": "detector", "test": "order", "metric": "accuracy",
     "claim": "the CNN-LSTM outperforms the CNN", "source": "Section 4.2, Conclusion",
     "better": "cnn_lstm", "worse": ("cnn",), "setup": "paper",
     "why_setup": "whether an LSTM over Table 2's trained feature map helps: over a frozen "
                  "ImageNet or random VGG16 map the two heads see other features"},
    {"key": "detector.covid_sensitivity", "paper": "detector", "test": "value",
     "claim": "COVID-19 sensitivity is 100 %", "source": "Tables 3 and 4, abstract",
     "model": "cnn_lstm", "metric": "covid19_sensitivity",
     "target": DETECTOR["cnn_lstm"]["sensitivity"]["covid19"], "setup": "paper",
     "why_setup": "a published number of Table 2's network"},
    {"key": "detector.beats_literature", "paper": "detector", "test": "above",
     "claim": "the proposed CNN-LSTM beats the published systems of Table 5",
     "source": "Table 5, Section 5", "model": "cnn_lstm", "metric": "accuracy",
     "target": max(a for study, _, a in LITERATURE if not study.startswith("Islam")),
     "setup": "paper", "why_setup": "the paper's network against other published systems"},
    {"key": "detector.from_the_lungs", "paper": "detector", "test": "lungs",
     "claim": "the network detects COVID-19 from the lungs (implicit in the design)",
     "source": "the method", "model": "cnn_lstm", "metric": "accuracy", "setup": "data",
     "why_setup": "what the audit measures is the data: a new model trained on lungs-blanked "
                  "images shows whether these images let a model succeed without the lungs; "
                  "it does not show where the paper's network looks"},
)
