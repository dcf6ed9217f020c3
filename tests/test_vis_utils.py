"""visualize_grid on hand-made images, weight images, and the PNG plots."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import vis_utils
from xpnet.vis_utils import first_layer_images, visualize_grid

pytest.importorskip("matplotlib")


def test_visualize_grid_hand_computed(dev):
    Xs = np.zeros((3, 2, 2, 1))
    Xs[0, :, :, 0] = [[0, 1], [2, 3]]
    Xs[1] = 7.0  # constant: becomes 0
    Xs[2, :, :, 0] = [[-1, 1], [1, -1]]
    grid = visualize_grid(dev(Xs), ubound=255.0, padding=1)
    expected = np.zeros((5, 5, 1))  # ceil(sqrt(3)) = 2 cells a side, 1 pixel between
    expected[0:2, 0:2, 0] = [[0, 85], [170, 255]]
    expected[3:5, 0:2, 0] = [[0, 255], [255, 0]]
    assert isinstance(grid, np.ndarray)
    np.testing.assert_allclose(grid, expected)


def test_visualize_grid_shapes_padding_and_bounds():
    rng = np.random.default_rng(0)
    Xs = rng.standard_normal((10, 4, 3, 3))
    grid = visualize_grid(Xs, ubound=1.0, padding=2)
    assert grid.shape == (4 * 4 + 3 * 2, 4 * 3 + 3 * 2, 3)
    cell = grid[6:10, 5:8]  # row 1, column 1: image 5
    assert cell.min() == 0.0 and cell.max() == 1.0
    np.testing.assert_allclose(cell, (Xs[5] - Xs[5].min()) / np.ptp(Xs[5]))
    assert np.all(grid[4:6] == 0) and np.all(grid[:, 3:5] == 0)  # padding rows / columns
    assert visualize_grid(Xs[:, :, :, 0]).shape == (19, 15, 1)  # grey (N, H, W)
    with pytest.raises(ValueError, match="shape"):
        visualize_grid(np.zeros((2, 3)))


def test_first_layer_images_cifar_and_digits_layouts():
    rng = np.random.default_rng(1)
    images = rng.standard_normal((5, 32, 32, 3))
    W1 = images.transpose(0, 3, 1, 2).reshape(5, 3072).T  # (3072, H), channels first
    np.testing.assert_array_equal(first_layer_images(W1, (3, 32, 32)), images)
    grey = rng.standard_normal((4, 8, 8))
    np.testing.assert_array_equal(first_layer_images(grey.reshape(4, 64).T, (8, 8)), grey)
    with pytest.raises(ValueError, match="W1"):
        first_layer_images(W1, (8, 8))


def test_plots_are_valid_pngs_written_atomically(tmp_path, dev):
    import matplotlib.image

    history = {"loss_history": list(np.linspace(2.3, 0.5, 40)),
               "train_acc_history": [0.1, 0.4, 0.6], "val_acc_history": [0.1, 0.35, 0.5]}
    curves = tmp_path / "curves.png"
    fig = vis_utils.plot_training_curves(history, curves)
    assert len(fig.axes) == 2
    W1 = np.random.default_rng(2).standard_normal((3072, 20)).astype(np.float32)
    weights = tmp_path / "weights.png"
    vis_utils.plot_first_layer_weights(dev(W1), (3, 32, 32), weights)
    grey = tmp_path / "grey.png"
    vis_utils.plot_first_layer_weights(W1[:64], (8, 8), grey)
    for path in (curves, weights, grey):
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[2] in (3, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "grey.png",
                                                          "weights.png"]
