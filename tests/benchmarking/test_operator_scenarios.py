"""The operator scenarios (RA, MEL, PACK): every system of a scenario does the same work.

Each adapter runs at the smoke size in this process (no timing): same output shapes and
dtypes, mel spectrograms equal to librosa's, packed rows holding exactly the input
sequences. torchvision and torchaudio cannot be imported here: their rows are skipped
with the reason, and their adapters are run against stand-in modules.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from datarax.benchmarking.adapters import SYSTEMS, BuildContext
from datarax.benchmarking.adapters.randaugment import MAGNITUDES, pull_matrix, rand_augment
from datarax.benchmarking.profiles import PROFILES
from datarax.benchmarking.runner import RunSpec, materialise, run_pairs, sized
from datarax.benchmarking.scenarios import MEL_SETTINGS, PACK_SEQ_LEN, SCENARIOS, stats_for
from datarax.benchmarking.suite import plan, select_systems

pytestmark = pytest.mark.slow  # run by the separate slow step of .ci/run


def _passes(scenario_name, system_name, tmp_path, records=None):
    """``(scenario, data, make_pass)`` of a system at the smoke size (or ``records``)."""
    scenario = sized(SCENARIOS[scenario_name], PROFILES["smoke"])
    if records is not None:
        scenario = dataclasses.replace(scenario, records=records)
    data = scenario.make_data(scenario.records)
    system = SYSTEMS[system_name]
    for module in system.requires:  # the benchmark extra may not be installed
        pytest.importorskip(module)
    context = BuildContext(data, stats_for(scenario, data), tmp_path, dict(system.options))
    return scenario, data, system.build(scenario, context)


def _numpy(batch):
    return {k: np.asarray(v) for k, v in dict(batch).items()}


def test_each_operator_scenario_has_datarax_and_its_peers_in_the_ci_profile():
    profile = PROFILES["ci_cpu"]
    specs = plan(profile, select_systems(profile, None), ["RA", "MEL", "PACK"], 5)
    systems = {name: [s.system for s in specs if s.scenario == name] for name in SCENARIOS}
    assert systems["RA"] == ["datarax", "dm_pix", "augmax", "torchvision"]
    assert systems["MEL"] == ["numpy", "jax", "datarax", "librosa", "librosa-clip", "torchaudio"]
    assert systems["PACK"] == ["datarax", "grain"]
    for name in ("RA", "MEL", "PACK"):
        smoke, ci = PROFILES["smoke"].records_for(SCENARIOS[name]), profile.records[name]
        assert smoke < ci <= SCENARIOS[name].records
        assert any(SYSTEMS[s].role == "peer" for s in systems[name])
    # The older scenarios keep their systems: the new peers have no rows there.
    w1 = [s.system for s in plan(profile, select_systems(profile, None), ["W1"], 1)]
    assert w1 == ["numpy", "jax", "datarax", "grain", "torch", "tfdata", "hf"]


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None
    and importlib.util.find_spec("torchaudio") is not None,
    reason="torchvision and torchaudio are installed here",
)
def test_torchvision_and_torchaudio_rows_are_skipped_with_the_reason():
    pytest.importorskip("torch")
    rows = run_pairs(
        [RunSpec("RA", "torchvision", 64, 1, 1), RunSpec("MEL", "torchaudio", 64, 1, 1)],
        "cpu",
        60,
    )
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert rows[0]["reason"].startswith("torchvision.transforms.v2 cannot be imported (")
    assert rows[1]["reason"].startswith("torchaudio cannot be imported (")
    if "+cpu" in importlib.metadata.version("torch"):
        assert all("needs torch's CUDA libraries" in r["reason"] for r in rows)


# -- MEL -----------------------------------------------------------------------------


def test_mel_systems_agree_with_librosa(tmp_path):
    """Reference: librosa.feature.melspectrogram on the batch; float32 FFTs differ by
    rounding: rtol 1e-3 plus 1e-5 of the batch's largest value."""
    _, data, librosa_pass = _passes("MEL", "librosa", tmp_path)
    expected = [b["mel"] for b in librosa_pass()]
    frames = 1 + data["audio"].shape[1] // MEL_SETTINGS["hop_length"]
    assert expected[0].shape == (64, MEL_SETTINGS["n_mels"], frames)
    assert sum(len(b) for b in expected) == len(data["audio"])
    for name in ("datarax", "numpy", "jax", "librosa-clip"):
        _, _, make_pass = _passes("MEL", name, tmp_path)
        batches = [_numpy(b)["mel"] for b in make_pass()]
        assert len(batches) == len(expected), name
        for got, want in zip(batches, expected, strict=True):
            assert got.shape == want.shape and got.dtype == np.float32, name
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5 * want.max(), err_msg=name)


# -- PACK ----------------------------------------------------------------------------


def _segments(batches, seq_field, position_field):
    """Every packed segment as a tuple of tokens, and the number of rows."""
    segments, rows = [], 0
    for batch in batches:
        b = _numpy(batch)
        tokens, seg, pos = b["tokens"], b[seq_field], b[position_field]
        assert tokens.shape == seg.shape == pos.shape and tokens.shape[1] == PACK_SEQ_LEN
        for row in range(len(tokens)):
            ids = seg[row]
            rows += int(ids.any())
            for s in np.unique(ids[ids > 0]):
                where = np.flatnonzero(ids == s)
                assert (np.diff(where) == 1).all()  # one contiguous run per segment
                assert (pos[row, where] == np.arange(where.size)).all()
                segments.append(tuple(tokens[row, where].tolist()))
            assert (tokens[row][ids == 0] == 0).all()  # padding is the pad token
    return segments, rows


def test_pack_systems_pack_exactly_the_input_sequences(tmp_path):
    scenario, data, datarax_pass = _passes("PACK", "datarax", tmp_path)
    _, _, grain_pass = _passes("PACK", "grain", tmp_path)
    ours, theirs = list(datarax_pass()), list(grain_pass())
    assert all(len(b["tokens"]) == scenario.batch_size for b in ours + theirs)
    want = sorted(tuple(t.tolist()) for t in data["tokens"])
    got_ours, rows_ours = _segments(ours, "segment_ids", "positions")
    got_theirs, rows_theirs = _segments(theirs, "tokens_segment_ids", "tokens_positions")
    assert sorted(got_ours) == want and sorted(got_theirs) == want
    # Both first-fit: rows (the elements counted) within 2 % of each other.
    assert abs(rows_ours - rows_theirs) <= 0.02 * rows_theirs
    tokens = sum(len(t) for t in data["tokens"])
    assert tokens / (rows_theirs * PACK_SEQ_LEN) > 0.9  # rows are well filled


# -- RA ------------------------------------------------------------------------------


def test_the_peers_choice_draws_num_ops_families_uniformly_per_record():
    """Families that add 1, 10 or 100 (in 1/255 steps) show what each record drew."""
    marks = [1.0, 10.0, 100.0]
    families = [lambda im, _s, _k, m=m: im + m / 255.0 for m in marks]
    batch = {"image": jnp.zeros((3000, 2, 2, 3), jnp.uint8), "label": jnp.zeros(3000)}
    keys = jax.random.split(jax.random.key(0), 3000)
    out = np.asarray(jax.jit(rand_augment(families))(batch, keys)["image"])
    total = out[:, 0, 0, 0].astype(int)
    assert (out == total[:, None, None, None]).all()  # one decision per record
    firsts = {a + b for a in (1, 10, 100) for b in (1, 10, 100)}
    assert set(total.tolist()) == firsts  # two operations, repetition allowed
    counts = np.bincount(total, minlength=201)[[2, 20, 200]]  # the same family twice
    assert all(abs(c / 3000 - 1 / 9) < 0.03 for c in counts)


@pytest.mark.parametrize("library", ["dm_pix", "augmax"])
def test_translation_moves_content_by_torchvision_magnitude(library):
    """Translate x at magnitude 9 of 31 on 32x32: 4 pixels, black fill (exact)."""
    pytest.importorskip(library)
    module = __import__(f"datarax.benchmarking.adapters.{library}", fromlist=["families"])
    translate_x = module.families()["translate_x"]
    image = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (32, 32, 3)), jnp.float32)
    shift = MAGNITUDES["translate"]
    moved = np.asarray(translate_x(image, jnp.float32(1.0), jax.random.key(0)))
    np.testing.assert_allclose(moved[:, shift:], np.asarray(image)[:, :-shift], atol=1e-6)
    assert shift == 4 and np.all(moved[:, :shift] == 0)


def test_the_peers_draw_only_families_of_torchvision_and_datarax():
    pytest.importorskip("dm_pix")
    pytest.importorskip("augmax")
    from datarax.benchmarking.adapters import augmax, dm_pix

    names = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
             "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
             "autocontrast", "equalize")  # fmt: skip
    if _rand_augment_exists():
        from datarax.operators.policies import AUGMENT_OPS

        assert names == AUGMENT_OPS
    for module in (dm_pix, augmax):
        family_names = list(module.families())
        assert family_names == [n for n in names if n in family_names]
    assert len(dm_pix.families()) == 10 and len(augmax.families()) == 7


def test_the_peers_magnitudes_are_datarax_randaugment_magnitudes():
    if not _rand_augment_exists():
        pytest.skip("datarax.operators.policies.RandAugment is not written yet")
    from datarax.operators.policies import randaugment_magnitude

    def ours(kind):
        return randaugment_magnitude(kind, 9, 31, 32, 32)

    assert MAGNITUDES["shear"] == pytest.approx(ours("shear_x"))
    assert MAGNITUDES["translate"] == int(ours("translate_x"))  # whole pixels
    assert MAGNITUDES["rotate"] == pytest.approx(ours("rotate"))
    assert MAGNITUDES["enhance"] == pytest.approx(ours("brightness"))
    assert MAGNITUDES["posterize_bits"] == ours("posterize")
    assert MAGNITUDES["solarize_threshold"] * 255 == pytest.approx(ours("solarize"))


def test_the_shear_matrix_pulls_as_torchvision_shears():
    m = np.asarray(pull_matrix(shear_x=0.5, dy=2.0))
    # Output pixel (y=2, x=3) samples input (y=0, x=3 + 0.5 * 2).
    np.testing.assert_allclose(m @ np.array([2.0, 3.0, 0.0, 1.0]), [0.0, 4.0, 0.0, 1.0])


def _rand_augment_exists():
    from datarax.operators import policies

    return hasattr(policies, "RandAugment")


@pytest.mark.parametrize("name", ["dm_pix", "augmax", "datarax"])
def test_ra_systems_keep_shapes_dtypes_and_records(name, tmp_path):
    if name == "datarax" and not _rand_augment_exists():
        pytest.skip("datarax.operators.policies.RandAugment is not written yet")
    scenario, data, make_pass = _passes("RA", name, tmp_path, records=300)
    first, second = (list(make_pass()) for _ in range(2))
    images = np.concatenate([_numpy(b)["image"] for b in first])
    labels = np.concatenate([_numpy(b)["label"] for b in first])
    assert images.shape == data["image"].shape and images.dtype == np.uint8
    assert [len(b["image"]) for b in first] == [256, 44]
    assert sorted(labels.tolist()) == sorted(data["label"].tolist())  # each record once
    # Most records change (identity is one family of many, drawn twice), and the
    # next pass (another epoch, another shuffle) draws again.
    changed = [not any((im == orig).all() for orig in data["image"]) for im in images[:50]]
    assert np.mean(changed) > 0.6
    again = np.concatenate([_numpy(b)["image"] for b in second])
    assert not np.array_equal(np.sort(images, axis=0), np.sort(again, axis=0))


# -- torchvision and torchaudio adapters, against stand-in modules ---------------------


@pytest.fixture
def stand_ins(monkeypatch):
    """``torchvision.transforms.v2`` and ``torchaudio`` modules with the used classes."""
    torch = pytest.importorskip("torch")

    for adapter in ("torchvision", "torchaudio"):  # their import checks see the real modules
        importlib.import_module(f"datarax.benchmarking.adapters.{adapter}")
    calls = {"augment": 0}

    class RandAugment:
        def __init__(self, *, num_ops, magnitude, num_magnitude_bins):
            assert (num_ops, magnitude, num_magnitude_bins) == (2, 9, 31)

        def __call__(self, image):
            assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
            calls["augment"] += 1
            return 255 - image

    class MelSpectrogram:
        def __init__(self, **settings):
            self.frames = 1 + 16_000 // settings["hop_length"]
            self.n_mels = settings["n_mels"]

        def __call__(self, clips):
            return torch.zeros((len(clips), self.n_mels, self.frames))

    v2 = types.ModuleType("torchvision.transforms.v2")
    v2.RandAugment = RandAugment
    transforms = types.ModuleType("torchvision.transforms")
    transforms.v2 = v2
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms = transforms
    torchaudio = types.ModuleType("torchaudio")
    torchaudio.transforms = types.SimpleNamespace(MelSpectrogram=MelSpectrogram)
    modules = {
        "torchvision": torchvision,
        "torchvision.transforms": transforms,
        "torchvision.transforms.v2": v2,
        "torchaudio": torchaudio,
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_the_torchvision_adapter_augments_each_record_in_a_dataloader(stand_ins, tmp_path):
    _, data, make_pass = _passes("RA", "torchvision", tmp_path, records=300)
    batches = [_numpy(b) for b in make_pass()]
    assert [b["image"].shape for b in batches] == [(256, 3, 32, 32), (44, 3, 32, 32)]
    assert stand_ins["augment"] == 300  # once per record
    assert sum(materialise(b) for b in batches) == 300
    images = np.concatenate([b["image"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])
    assert images.dtype == np.uint8 and sorted(labels.tolist()) == sorted(data["label"].tolist())
    # The stand-in inverts: the records come back inverted, CHW, in the sampler's order.
    inverted = 255 - data["image"].transpose(0, 3, 1, 2)
    assert {im.tobytes() for im in images} == {im.tobytes() for im in inverted}


def test_the_torchaudio_adapter_transforms_whole_batches(stand_ins, tmp_path):
    _, data, make_pass = _passes("MEL", "torchaudio", tmp_path)
    shapes = [_numpy(b)["mel"].shape for b in make_pass()]
    assert shapes == [(64, 80, 101)] * (len(data["audio"]) // 64)
