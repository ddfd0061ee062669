import numpy as np
import pytest
import torch

from gm.data import Batcher, load_dataset
from gm.data import dsprites as ds
from gm.errors import GMError


@pytest.fixture(scope="module")
def sprites():
    return ds.load_dsprites(render_only=True)


def test_default_subset_count_binary_distinct(sprites):
    assert len(sprites) == 18432 == 3 * 6 * 32 * 32
    assert sprites.images.shape == (18432, 1, 64, 64)
    assert sprites.images.dtype == torch.uint8
    assert set(sprites.images.unique().tolist()) == {0, 1}
    flat = sprites.images.reshape(len(sprites), -1).numpy()
    assert len(np.unique(flat, axis=0)) == 18432
    assert flat.sum(axis=1).min() > 0  # every sprite is visible


def test_factor_grid_matches_official_order(sprites):
    classes = sprites.factor_classes.numpy()
    assert classes.shape == (18432, 5)
    assert (classes[:, 2] == 0).all()  # orientation 0 subset
    # Fastest-varying last: posY, then posX, scale, shape.
    assert classes[:3, 4].tolist() == [0, 1, 2]
    assert classes[32, 3] == 1 and classes[1024, 1] == 1 and classes[6144, 0] == 1
    values = sprites.factors.numpy()
    assert np.allclose(np.unique(values[:, 1]), np.linspace(0.5, 1, 6))
    assert np.allclose(np.unique(values[:, 3]), np.linspace(0, 1, 32))


def test_shapes_stay_inside_canvas_in_every_orientation():
    # The largest sprites, at the extreme positions, in all 40 orientations.
    classes = np.array([[s, 5, o, x, y] for s in range(3) for o in range(40) for x in (0, 31) for y in (0, 31)])
    imgs = ds.render_classes(classes)
    border = imgs[:, [0, -1], :].sum() + imgs[:, :, [0, -1]].sum()
    assert border == 0
    assert (imgs.reshape(len(imgs), -1).sum(1) > 0).all()


def test_position_and_scale_move_the_sprite():
    base = ds.render_classes(np.array([[0, 0, 0, 0, 0], [0, 0, 0, 31, 0], [0, 5, 0, 0, 0]]))
    cols = [np.nonzero(im.any(0))[0] for im in base]
    assert cols[1].mean() > cols[0].mean() + 25          # posX moves right
    assert base[2].sum() > 3 * base[0].sum()             # scale 1 is about 4x the area of scale 0.5


def test_full_dataset_is_lazy():
    full = ds.load_dsprites(full=True, render_only=True)
    assert len(full) == 737280
    assert full.images.untyped_storage().nbytes() <= 64 * 64  # one blank image, nothing rendered
    idx = torch.tensor([0, 737279, 12345])
    imgs = full.take(idx)
    assert imgs.shape == (3, 1, 64, 64)
    expected = ds.render_classes(full.factor_classes[idx].numpy())
    assert (imgs[:, 0].numpy() == expected).all()


def test_loads_official_npz_when_present(tmp_path):
    classes = ds.factor_grid(None)[:50]
    imgs = ds.render_classes(classes)
    latents = np.concatenate([np.zeros((50, 1), np.int64), classes], axis=1)
    np.savez(tmp_path / ds.OFFICIAL_FILE, imgs=imgs, latents_classes=latents)
    loaded = ds.load_dsprites(tmp_path)
    assert loaded.meta["source"].endswith(ds.OFFICIAL_FILE)
    assert len(loaded) == 50
    assert (loaded.factor_classes.numpy() == classes).all()  # the colour factor is dropped
    assert (loaded.images[:, 0].numpy() == imgs).all()


def test_corrupt_npz_is_a_clear_error(tmp_path):
    (tmp_path / ds.ASSIGNMENT_FILE).write_bytes(b"not a zip")
    with pytest.raises(GMError, match="Could not read dSprites"):
        ds.load_dsprites(tmp_path)


def test_mnist_from_shared_data(mnist_dir):
    train = load_dataset("mnist", mnist_dir)
    test = load_dataset("mnist", mnist_dir, train=False)
    assert train.images.shape == (7000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255
    assert sorted(train.labels.unique().tolist()) == list(range(10))


def test_mnist_missing_names_the_files(tmp_path):
    with pytest.raises(GMError) as err:
        load_dataset("mnist", tmp_path, download=False)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg and str(tmp_path) in msg


def test_batcher_is_deterministic_and_resumable(sprites):
    a = Batcher(sprites, 64, seed=3, device=torch.device("cpu"))
    first = [a.next()[0] for _ in range(300)]  # crosses an epoch boundary (288 batches/epoch)
    assert a.epoch == 1
    b = Batcher(sprites, 64, seed=3, device=torch.device("cpu"))
    for _ in range(200):
        b.next()
    c = Batcher(sprites, 64, seed=3, device=torch.device("cpu"))
    c.load_state_dict(b.state_dict())
    rest = [c.next()[0] for _ in range(100)]
    assert all(torch.equal(x, y) for x, y in zip(first[200:], rest))
    # One epoch visits every image exactly once (drop-last aside).
    d = Batcher(sprites, 64, seed=0, device=torch.device("cpu"))
    perm = d._permutation()
    assert sorted(perm.tolist()) == list(range(len(sprites)))


def test_unknown_dataset():
    with pytest.raises(GMError, match="Unknown dataset"):
        load_dataset("cifar")
