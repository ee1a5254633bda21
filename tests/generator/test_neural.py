"""generator.neural.renderer: the inference API and the neural renderer (tiny checkpoints on the CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from generator.errors import CheckpointError, InputError  # noqa: E402
from generator.neural.checkpoint import load_generator, read_checkpoint, save_checkpoint  # noqa: E402
from generator.neural.model import Generator, GeneratorConfig  # noqa: E402
from generator.neural.renderer import NeuralRenderer, faces_to_tensor, frames_to_uint8_rgb, generate  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Generator(GeneratorConfig.tiny()).eval()


def _face(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _speech(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    return x / np.abs(x).max()


def test_generate_equals_the_reference_order_forward(tiny):
    # generate(seed) == forward after torch.manual_seed(seed) with a batch of one (NOTES.md order)
    face, speech = _face(64), _speech(7 * 320 + 17)
    frames = generate(tiny, face, speech, "happiness", 21)
    assert frames.shape == (math.ceil(len(speech) / 320), 64, 64, 3) and frames.dtype == np.uint8
    torch.manual_seed(21)
    with torch.no_grad():
        video, _ = tiny(faces_to_tensor(face[None]), torch.from_numpy(speech)[None],
                        torch.tensor([[0, 0, 0, 1.0, 0, 0]]), reference_path=True)
    want = frames_to_uint8_rgb(video)[0]
    diff = np.abs(frames.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_generate_is_deterministic_and_seeded(tiny):
    face, speech = _face(64), _speech(5 * 320)
    a = generate(tiny, face, speech, "sadness", 3)
    b = generate(tiny, face, speech, "sadness", 3)
    c = generate(tiny, face, speech, "sadness", 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_batched_equals_one_by_one_and_chunking_changes_nothing(tiny):
    faces = [_face(64, i) for i in range(3)]
    speeches = [_speech(6 * 320, 0), _speech(6 * 320, 1), _speech(4 * 320, 2)]  # two lengths: two batches
    emotions = ["anger", "happiness=0.7,neutral=0.3", [0, 0, 1, 0, 0, 0]]
    batched = generate(tiny, faces, speeches, emotions, [5, 6, 7], frame_budget=4)  # chunks of 2 frames
    for i in range(3):
        single = generate(tiny, faces[i], speeches[i], emotions[i], [5, 6, 7][i], frame_budget=1000)
        diff = np.abs(batched[i].astype(int) - single.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_long_speech_chunked_equals_one_pass_exactly(tiny):
    face, speech = _face(64), _speech(40 * 320)
    a = generate(tiny, face, speech, "fear", 1, frame_budget=7)
    b = generate(tiny, face, speech, "fear", 1, frame_budget=100)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_emotion_blends(tiny):
    face, speech = _face(64), _speech(4 * 320)
    one_hot = generate(tiny, face, speech, "happiness", 2)
    assert np.array_equal(one_hot, generate(tiny, face, speech, "happiness=1", 2))
    assert np.array_equal(one_hot, generate(tiny, face, speech, {"happiness": 2.0}, 2))  # normalised
    assert np.array_equal(one_hot, generate(tiny, face, speech, [0, 0, 0, 1, 0, 0], 2))
    half = generate(tiny, face, speech, "happiness", 2, intensity=0.5)
    assert not np.array_equal(one_hot, half)
    for bad in ([0, 0, 0, -1, 1, 0], [1, 0, 0], "joy=0.5,mirth=0.5", [0] * 6):
        with pytest.raises(InputError):
            generate(tiny, face, speech, bad, 2)
    with pytest.raises(InputError, match="intensity"):
        generate(tiny, face, speech, "happiness", 2, intensity=1.5)


def test_generate_refuses_unaligned_faces_and_short_speech(tiny):
    with pytest.raises(InputError, match="aligned"):
        generate(tiny, _face(100), _speech(4 * 320), "anger", 0)
    with pytest.raises(InputError, match="at least"):
        generate(tiny, _face(64), _speech(50), "anger", 0)


def test_checkpoint_round_trip_and_bad_files(tiny, tmp_path):
    path = save_checkpoint(tmp_path / "g.pt", {"model_config": tiny.cfg.to_dict(), "generator": tiny.state_dict(),
                                               "step": 7})
    model, info = load_generator(path)
    assert info["step"] == 7 and not info["bare"] and model.cfg == tiny.cfg
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny.state_dict().values()))
    # a bare state dict is taken as the authors' file: the paper config, so a tiny one does not fit
    bare = tmp_path / "bare.pt"
    torch.save({"module." + k: v for k, v in tiny.state_dict().items()}, bare)
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_generator(bare)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_checkpoint(junk)


@pytest.mark.slow
def test_authors_bare_state_dict_loads_as_the_paper_config(tmp_path):
    torch.manual_seed(0)
    ref = Generator(GeneratorConfig())
    bare = tmp_path / "generator.pt"
    torch.save({"module." + k: v for k, v in ref.state_dict().items()}, bare)  # as nn.DataParallel saved it
    model, info = load_generator(bare)
    assert info["bare"] and model.cfg == GeneratorConfig()
    assert torch.equal(model.decoder.out_new[1].weight, ref.decoder.out_new[1].weight)


def test_neural_renderer_on_a_photo(tiny, tmp_path):
    pytest.importorskip("dlib")
    from generator.align import shipped_faces
    from generator.renderers import RenderResult, get_renderer

    path = save_checkpoint(tmp_path / "g.pt", {"model_config": tiny.cfg.to_dict(), "generator": tiny.state_dict()})
    renderer = get_renderer("neural", checkpoint=path)
    assert renderer.name == "neural" and len(renderer.checkpoint_sha256) == 64
    assert renderer.frame_budget == 64  # the CPU's default (CUDA: 512, see test_frame_budget_per_device)
    _, photo = shipped_faces()[0]
    speech = _speech(10 * 320 + 5)
    result = renderer.render(photo, speech, "happiness=0.7,neutral=0.3", 3)
    assert isinstance(result, RenderResult)
    assert result.frames.shape == (11, 128, 128, 3) and result.frames.dtype == np.uint8
    assert result.fps == 25 and result.audio_rate == 8000 and np.array_equal(result.audio, speech)
    p = result.parameters
    assert p["seed"] == 3 and p["checkpoint_sha256"] == renderer.checkpoint_sha256
    assert p["emotion_vector"] == [0.0, 0.0, 0.0, 0.7, 0.3, 0.0]
    again = renderer.render(photo, speech, "happiness=0.7,neutral=0.3", 3)
    assert np.array_equal(again.frames, result.frames)


def test_subpixel_and_split_methods_agree(tiny):
    face, speech = _face(64), _speech(6 * 320)
    a = generate(tiny, face, speech, "disgust", 8, method="subpixel")
    b = generate(tiny, face, speech, "disgust", 8, method="split")
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_render_batch_equals_render_per_item(tiny, tmp_path):
    pytest.importorskip("dlib")
    from generator.align import shipped_faces

    path = save_checkpoint(tmp_path / "g.pt", {"model_config": tiny.cfg.to_dict(), "generator": tiny.state_dict()})
    renderer = NeuralRenderer(path)
    faces = [img for _, img in shipped_faces()]
    items = [{"face": faces[0], "speech": _speech(6 * 320, 1), "emotion": "anger", "seed": 1},
             {"face": faces[1], "speech": _speech(6 * 320, 2), "emotion": "sadness", "seed": 2, "intensity": 0.5},
             {"face": faces[0], "speech": _speech(4 * 320, 3), "emotion": "fear", "seed": 3}]
    batch = renderer.render_batch(items, size=64)
    for it, res in zip(items, batch):
        one = renderer.render(it["face"], it["speech"], it["emotion"], it["seed"],
                              intensity=it.get("intensity", 1.0), size=64)
        diff = np.abs(res.frames.astype(int) - one.frames.astype(int))
        assert res.frames.shape == (len(it["speech"]) // 320, 64, 64, 3)
        assert diff.max() <= 1 and res.parameters == one.parameters


def test_frame_budget_per_device():
    from generator.neural.renderer import default_frame_budget

    assert default_frame_budget("cpu") == 64
    assert default_frame_budget("cuda") == default_frame_budget("cuda:1") == 512
