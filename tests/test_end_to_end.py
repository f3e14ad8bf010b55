"""The end-to-end paths for GPU users (backbone trained with the head) run on tiny inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrlib import detector, features, predict, prognet

pytestmark = pytest.mark.slow


def test_prognet_finetune_trains_through_the_backbone(sample_dir: Path, tmp_path: Path) -> None:
    """The CNN trains with the head; the saved model scores a test patient as the run did,
    and Grad-CAM explains it with its own trained CNN (chapter 5 on a finetune run)."""
    config = prognet.Config(backbone="alexnet", weights=None, image_size=32, epochs=1,
                            finetune=True, seed=0).check()
    sequences = prognet.cohort(sample_dir, config)
    folds = prognet.make_splits(sequences, config)
    _, found = prognet.extract(sequences, config, tmp_path / "cache", progress=False)
    predictions, history, trained = prognet.train_and_predict(sequences, folds, found, config)
    assert trained.model.get_layer("per_image_cnn").layer.trainable
    assert len(history) == 1 and "val_loss" in history
    assert predictions["survival_score"].between(0, 1).all()
    assert len(predictions) == len(folds[0][2])
    prognet.save_model(tmp_path / "run", config, trained)
    saved = predict.load_prognet(tmp_path / "run")
    patient = predictions.iloc[0]
    paths = sequences.set_index("patient_id").loc[patient["patient_id"], "paths"][:config.seq_len]
    scored = predict.predict_prognet(saved, paths)["survival_score"].iloc[0]
    assert scored == pytest.approx(patient["survival_score"], abs=1e-5)
    maps, head, standardize = predict.prognet_parts(saved)
    kernel = lambda model: model.get_layer("conv1").get_weights()[0]  # noqa: E731
    np.testing.assert_array_equal(kernel(maps), kernel(trained.model.get_layer("per_image_cnn").layer))
    assert not np.array_equal(kernel(maps), kernel(features.backbone(saved.spec)))  # not the untrained CNN
    assert head.name == "prognet_head" and standardize is None  # the whole model reads raw features
    images, cams, titles = predict.prognet_grad_cams(saved, paths)
    assert len(images) == len(cams) == len(titles) == config.seq_len
    assert all(cam.min() >= 0 and cam.max() <= 1 for cam in cams)


def test_detector_trainable_base_with_augmentation_in_the_model(sample_dir: Path, tmp_path: Path) -> None:
    config = detector.Config(model="cnn", weights=None, image_size=32, epochs=1, trainable=True,
                             n_per_class=10, augment_copies=0, shortcut_audit=False).check()
    table = detector.dataset(sample_dir, config)
    train, test = detector.make_split(table, config)
    predictions, history, model = detector.train_and_predict(table, train, test, {}, config)
    names = [layer.name for layer in model.layers]
    assert names.index("augmentation") == 1  # right after the input, before the conv base
    assert len(model.get_layer("augmentation").layers) > 0
    probabilities = predictions[[f"p_{c}" for c in detector.CLASSES]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert len(predictions) == len(test) and len(history) == 1


def test_whole_models_are_saved_and_score_new_images_as_in_training(sample_dir: Path,
                                                                    tmp_path: Path) -> None:
    """A trained base is saved with the head (kind "whole"); the saved model scores the
    test images as the run did."""
    config = detector.Config(model="cnn", weights=None, image_size=32, epochs=1, trainable=True,
                             n_per_class=10, augment_copies=0, shortcut_audit=False).check()
    table = detector.dataset(sample_dir, config)
    train, test = detector.make_split(table, config)
    predictions, _, model = detector.train_and_predict(table, train, test, {}, config)
    detector.save_model(tmp_path / "run", config, model)
    saved = predict.load_detector(tmp_path / "run")
    assert saved.card["kind"] == "whole" and (tmp_path / "run" / "model" / "model.keras").is_file()
    scored = predict.predict_detector(saved, predictions["path"])
    columns = [f"p_{c}" for c in detector.CLASSES]
    np.testing.assert_allclose(scored[columns], predictions[columns], atol=1e-6)
    base, head = predict.detector_parts(saved)
    assert base.name == "conv_base" and head.name == "detector_head_cnn"
