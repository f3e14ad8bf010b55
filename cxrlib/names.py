"""Floor 1: the names every floor shares (backbones, detector models and bases, classes).

Plain tuples without TensorFlow, so ``cxr --help`` and ``cxr batch`` stay fast; the
modules that use them (``models``, ``detector``, ``compare``, ``batch``) import them
from here.
"""
from __future__ import annotations

#: ProgNet's CNN backbones (the paper's Table I rows).
BACKBONES = ("alexnet", "vgg16", "vgg19", "resnet50")
#: Backbones for which Keras ships ImageNet weights (AlexNet has none).
IMAGENET_BACKBONES = ("vgg16", "vgg19", "resnet50")
#: The detector's heads: a dense classifier, or an LSTM over the 7x7 feature map's cells.
DETECTOR_MODELS = ("cnn", "cnn_lstm")
#: Conv bases of the detector: "vgg16" (Keras VGG16, the CPU mode) and "paper" (Table 2).
DETECTOR_BASES = ("vgg16", "paper")
#: The detector's classes, in label order (label i is ``CLASSES[i]``).
CLASSES = ("covid19", "pneumonia", "normal")
CLASS_TITLES = {"covid19": "COVID-19", "pneumonia": "pneumonia", "normal": "normal"}
#: A run's folder, ``<results>/<experiment>/<backbone or model>/<prefix><k>``: a ProgNet
#: run per seed, a detector run per fold. A folder kept aside (``seed-0.failed``) or still
#: running (``seed-0.partial``) has another name, and is not a run.
RUN_PREFIXES = {"prognet": "seed-", "detector": "fold-"}
