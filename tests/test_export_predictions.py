"""``Model.export_predictions`` (HugeCTR <= 23.08): the last eval batch appended to two text files as
HugeCTR's ``ostream <<`` writes floats (6 significant digits, a space after each value)."""

import numpy as np
import pytest
import torch

import hugectr


def test_export_appends_each_eval_batch(planted_data, build_small_model, tmp_path):
    model = build_small_model(planted_data)
    model.start_data_reading()
    for _ in range(3):
        model.train()
    pred_file, label_file = str(tmp_path / "pred"), str(tmp_path / "label")
    with pytest.raises(RuntimeError, match="no evaluation batch yet"):
        model.export_predictions(pred_file, label_file)
    expected_preds, expected_labels = [], []
    for _ in range(2):
        model.eval()
        probabilities, labels = model.engine.last_eval
        expected_preds.append(probabilities.numpy().reshape(-1))
        expected_labels.append(labels.numpy().reshape(-1))
        model.export_predictions(pred_file, label_file)
    written_preds = open(pred_file).read()
    assert written_preds.endswith(" ") and "\n" not in written_preds
    values = np.array(written_preds.split(), dtype=np.float64)
    expected = np.concatenate(expected_preds)
    assert values.shape == (2 * 128,)                      # two eval batches of batchsize_eval 128, label_dim 1
    np.testing.assert_allclose(values, expected, rtol=5e-6)  # 6 significant digits
    # the probabilities really are the model's: sigmoid of the logit layer's output on that batch
    assert ((values > 0) & (values < 1)).all()
    labels = np.array(open(label_file).read().split(), dtype=np.float64)
    np.testing.assert_array_equal(labels, np.concatenate(expected_labels))
    assert set(np.unique(labels)) <= {0.0, 1.0}


def test_export_refuses_models_with_several_losses(tmp_path):
    solver = hugectr.CreateSolver(batchsize=8, batchsize_eval=8, vvgpu=[[0]])
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["u"],
                                      eval_source="u", check_type=hugectr.Check_t.Non)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer())
    model.add(hugectr.Input(label_dims=[1, 1], label_names=["click", "buy"], dense_dim=3, dense_name="dense",
                            data_reader_sparse_param_array=[]))
    for label in ("click", "buy"):
        model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.InnerProduct, bottom_names=["dense"],
                                     top_names=[f"{label}_logit"], num_output=1))
        model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.BinaryCrossEntropyLoss,
                                     bottom_names=[f"{label}_logit", label], top_names=[f"{label}_loss"]))
    model.compile()
    with pytest.raises(ValueError, match="one loss layer.*has 2"):
        model.export_predictions(str(tmp_path / "p"), str(tmp_path / "l"))


def test_probabilities_match_the_logits(planted_data, build_small_model):
    model = build_small_model(planted_data)
    model.engine.keep = ("logit",)
    model.start_data_reading()
    model.eval()
    probabilities, _ = model.engine.last_eval
    torch.testing.assert_close(probabilities, torch.sigmoid(model.engine.kept["logit"].float()))
