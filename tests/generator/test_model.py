"""Shapes, layout and equivalences of generator.neural.model (tiny config on the CPU; the paper config where
its size is the point)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from generator.neural.model import (  # noqa: E402
                                    FAKE_CLASS, EmotionDiscriminator, FrameDiscriminator, Generator, GeneratorConfig, count_parameters,
                                    load_generator_state, strip_module_prefix)

REFERENCE_JSON = Path(__file__).resolve().parents[3] / "shared" / "paper" / "reference_generator_state_dict.json"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _reference_layout() -> dict[str, tuple[int, ...]]:
    if not REFERENCE_JSON.is_file():
        # ../shared sits beside the checkout and beside CI's clone: in CI the layout test must run.
        if os.environ.get("EMOSTUDY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{REFERENCE_JSON} is missing: CI needs ../shared beside the clone")
        pytest.skip(f"{REFERENCE_JSON} not present")
    data = json.loads(REFERENCE_JSON.read_text())
    return {t["key"]: tuple(t["shape"]) for t in data["tensors"]}


def _inputs(cfg: GeneratorConfig, b: int = 2, n_samples: int = 8 * 320, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, cfg.image_size, cfg.image_size, generator=g) * 2 - 1
    audio = torch.randn(b, n_samples, generator=g)
    emotion = torch.eye(6)[torch.arange(b) % 6]
    return image, audio, emotion


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Generator(GeneratorConfig.tiny()).eval()


def test_paper_config_has_the_reference_layout():
    ref = _reference_layout()
    model = Generator(GeneratorConfig())
    assert count_parameters(model) == 41_647_993
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(own) == 68
    assert own == {k[len("module."):]: v for k, v in ref.items()}
    assert sum(math.prod(s) for s in ref.values()) == 41_647_993  # the JSON's own total


def test_reference_layout_state_dict_loads_strictly_with_and_without_prefix():
    ref = _reference_layout()
    g = torch.Generator().manual_seed(3)
    state = {k: torch.randn(*shape, generator=g) * 0.01 for k, shape in ref.items()}  # "module." keys
    model = Generator(GeneratorConfig())
    load_generator_state(model, state)
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k[len("module."):]], v)
    other = Generator(GeneratorConfig())
    load_generator_state(other, strip_module_prefix(state))
    assert torch.equal(other.decoder.conv_4.weight_hh_l0, state["module.decoder.conv_4.weight_hh_l0"])
    bad = dict(state)
    bad.pop("module.decoder.out_new.1.bias")
    with pytest.raises(KeyError, match="missing.*decoder.out_new.1.bias"):
        load_generator_state(Generator(GeneratorConfig()), bad)


def test_layer_shapes_paper_config():
    cfg = GeneratorConfig()
    model = Generator(cfg)
    image, audio, _ = _inputs(cfg, b=1, n_samples=8000)  # 1 s of speech
    with torch.no_grad():
        feats = model.speech_encoder.features(audio)
        assert feats.shape == (1, 125, 16)  # 125 vectors/s
        speech = model.speech_encoder(audio, torch.zeros(1, 17, 16), torch.zeros(1, 17, 16))
        assert speech.shape == (1, 25, 512)  # 25 frames/s
        code, skips = model.image_encoder(image)
    assert code.shape == (1, 512)
    assert [tuple(s.shape[1:]) for s in skips] == [(67, 64, 64), (131, 32, 32), (259, 16, 16), (515, 8, 8), (515, 4, 4)]
    assert cfg.latent_dim == 1664 and cfg.samples_per_frame == 320


@pytest.mark.parametrize("n_samples", [2560, 2561, 2879, 3200, 1000])
def test_frame_count_is_ceil_of_length_over_320(tiny, n_samples):
    cfg = tiny.cfg
    image, audio, emotion = _inputs(cfg, b=1, n_samples=n_samples)
    with torch.no_grad():
        video, logits = tiny(image, audio, emotion)
    assert video.shape == (1, math.ceil(n_samples / 320), 3, cfg.image_size, cfg.image_size)
    assert logits.shape == (1, 6)
    assert video.abs().max() <= 1.0


def test_context_layer_order():
    # feature index = offset_index * 16 + channel, offsets -17..+17, every 5th step kept.
    cfg = GeneratorConfig.tiny()
    enc = Generator(cfg).speech_encoder
    n, c = 12, cfg.speech_features
    feats = torch.arange(n, dtype=torch.float32)[None, :, None].expand(1, n, c) * 100 + torch.arange(c)
    start = torch.full((1, cfg.context, c), -1.0)
    end = torch.full((1, cfg.context, c), -2.0)
    out = enc.context(feats, start, end)
    assert out.shape == (1, 3, 35 * c)
    for ti, step in enumerate((0, 5, 10)):
        for oi, offset in enumerate(range(-17, 18)):
            src = step + offset
            expect = -1.0 if src < 0 else (-2.0 if src >= n else src * 100.0)
            for ch in (0, c - 1):
                want = expect if expect < 0 else expect + ch
                assert out[0, ti, oi * c + ch].item() == want


def test_random_draw_order_matches_the_reference(tiny):
    # NOTES.md: context start, context end, then one (B, noise_dim) draw per frame, global generator.
    cfg = tiny.cfg
    torch.manual_seed(11)
    start, end, noise = tiny.draw_noise(2, 4)
    torch.manual_seed(11)
    want_start = torch.Tensor(2, cfg.context, cfg.speech_features).normal_(0, 0.002)
    want_end = torch.Tensor(2, cfg.context, cfg.speech_features).normal_(0, 0.002)
    want_noise = torch.stack([torch.normal(torch.zeros(2, cfg.noise_dim), torch.ones(2, cfg.noise_dim))
                              for _ in range(4)], 1)
    assert torch.equal(start, want_start) and torch.equal(end, want_end) and torch.equal(noise, want_noise)


def test_deterministic_per_seed_and_seed_matters(tiny):
    image, audio, emotion = _inputs(tiny.cfg)
    with torch.no_grad():
        a = tiny(image, audio, emotion, torch.Generator().manual_seed(5))[0]
        b = tiny(image, audio, emotion, torch.Generator().manual_seed(5))[0]
        torch.manual_seed(5)
        c = tiny(image, audio, emotion)[0]  # global generator, as the reference code
        d = tiny(image, audio, emotion, torch.Generator().manual_seed(6))[0]
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(a, d)


def test_fast_decoder_equals_reference_decoder(tiny):
    image, audio, emotion = _inputs(tiny.cfg, n_samples=6 * 320)
    with torch.no_grad():
        fast = tiny(image, audio, emotion, torch.Generator().manual_seed(1))[0]
        ref = tiny(image, audio, emotion, torch.Generator().manual_seed(1), reference_path=True)[0]
    assert torch.allclose(fast, ref, atol=1e-5), (fast - ref).abs().max()


def test_chunked_decoding_equals_one_pass(tiny):
    image, audio, emotion = _inputs(tiny.cfg, n_samples=7 * 320)
    with torch.no_grad():
        codes = tiny.encode(image, audio, emotion, torch.Generator().manual_seed(2))
        whole, _ = tiny.decoder.forward_fast(codes.z, codes.terms)
        parts, state = [], None
        for t0 in range(0, 7, 3):
            out, state = tiny.decoder.forward_fast(codes.z[:, t0:t0 + 3], codes.terms, state)
            parts.append(out)
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-6)


def test_convlstm_cell_by_hand():
    from generator.neural.model import ConvLSTM

    torch.manual_seed(0)
    cell = ConvLSTM(2, 3)
    x = torch.randn(1, 2, 2, 5, 5)
    out, (h, c) = cell(x)
    # independent route: gates from conv2d on the concatenation of input and state
    hp = torch.zeros(1, 3, 5, 5)
    cp = torch.zeros(1, 3, 5, 5)
    for t in range(2):
        gates = (torch.nn.functional.conv2d(x[:, t], cell.weight_ih_l0, cell.bias_ih_l0, padding=1)
                 + torch.nn.functional.conv2d(hp, cell.weight_hh_l0, cell.bias_hh_l0, padding=1))
        i, f, g, o = gates.chunk(4, 1)
        cp = torch.sigmoid(f) * cp + torch.sigmoid(i) * torch.nn.functional.leaky_relu(g, 0.2)
        hp = torch.sigmoid(o) * torch.tanh(cp)
        assert torch.allclose(out[:, t], hp, atol=1e-6)
    assert torch.allclose(c, cp, atol=1e-6)


def test_emotion_blend_of_a_one_hot_equals_the_one_hot(tiny):
    image, audio, _ = _inputs(tiny.cfg, b=1)
    one_hot = torch.tensor([[0, 0, 0, 1.0, 0, 0]])
    blend = torch.tensor([[0, 0, 0, 0.6, 0, 0]]) + torch.tensor([[0, 0, 0, 0.4, 0, 0]])
    mixed = torch.tensor([[0, 0, 0, 0.7, 0.3, 0]])
    with torch.no_grad():
        a = tiny(image, audio, one_hot, torch.Generator().manual_seed(1))[0]
        b = tiny(image, audio, blend, torch.Generator().manual_seed(1))[0]
        c = tiny(image, audio, mixed, torch.Generator().manual_seed(1))[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_discriminators_shapes():
    video = torch.rand(2, 3, 3, 64, 64) * 2 - 1
    ref = video[:, 0]
    assert FrameDiscriminator(64, 8)(video, ref).shape == (2, 3)
    ed = EmotionDiscriminator(n_classes=7, image_size=64, width=8)
    assert ed(video).shape == (2, 7) and FAKE_CLASS == 6
    clf = EmotionDiscriminator(n_classes=6, image_size=64, width=8)
    assert clf(video).shape == (2, 6)
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        clf(video[:, 0])


def test_paper_discriminator_sizes():
    # NOTES.md: 5 convs to 512x4x4 = 8192 -> 2048 -> 1 (frame) / -> 512 -> LSTM(512) -> 7 (emotion)
    fd = FrameDiscriminator()
    assert fd.out[0].in_features == 8192 and fd.out[0].out_features == 2048
    ed = EmotionDiscriminator()
    assert ed.projector[2].out_features == 512 and ed.rnn_1.hidden_size == 512 and ed.cls.out_features == 7


def test_config_round_trip():
    cfg = GeneratorConfig.tiny()
    assert GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="multiple of 32"):
        GeneratorConfig(image_size=100)


@pytest.mark.parametrize("k,mode", [(3, "reflect"), (3, "zeros"), (7, "reflect"), (5, "zeros")])
@pytest.mark.parametrize("c_out", [2, 6])
def test_upconv_equals_conv_of_the_upsampled_image(k, mode, c_out):
    import torch.nn.functional as F

    from generator.neural.model import PhaseKernels, upconv

    g = torch.Generator().manual_seed(k)
    x = torch.randn(2, 3, 8, 6, generator=g)
    w = torch.randn(c_out, 3, k, k, generator=g)
    up = F.interpolate(x, scale_factor=2, mode="nearest")
    want = F.conv2d(F.pad(up, (k // 2,) * 4, mode="reflect" if mode == "reflect" else "constant"), w)
    got = upconv(x, PhaseKernels.of(w, mode))
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_subpixel_decoder_equals_reference_decoder(tiny):
    image, audio, emotion = _inputs(tiny.cfg, n_samples=5 * 320)
    with torch.no_grad():
        codes = tiny.encode(image, audio, emotion, torch.Generator().manual_seed(4))
        ref = tiny.decoder.forward_reference(codes.z, codes.skips)
        sub, _ = tiny.decoder.forward_subpixel(codes.z, codes.terms, tiny.decoder.phase_kernels())
        parts, state = [], None
        for t0 in (0, 2, 4):
            out, state = tiny.decoder.forward_subpixel(codes.z[:, t0:t0 + 2], codes.terms,
                                                       tiny.decoder.phase_kernels(), state)
            parts.append(out)
    assert torch.allclose(sub, ref, atol=1e-5), (sub - ref).abs().max()
    assert torch.allclose(torch.cat(parts, 1), sub, atol=1e-6)


def _independent_forward(sd, cfg, image, audio, emotion, seed):
    """The generator written again from NOTES.md alone, functionally, from the state dict: an
    independent route to the same video (torch.manual_seed, then the reference's draws)."""
    import torch.nn.functional as F

    def lrelu(x):
        return F.leaky_relu(x, 0.2)

    def lstm(x, prefix, layers):
        for layer in range(layers):
            w_ih, w_hh = sd[f"{prefix}.weight_ih_l{layer}"], sd[f"{prefix}.weight_hh_l{layer}"]
            b = sd[f"{prefix}.bias_ih_l{layer}"] + sd[f"{prefix}.bias_hh_l{layer}"]
            hid = w_hh.shape[1]
            h = x.new_zeros(x.shape[0], hid)
            c = x.new_zeros(x.shape[0], hid)
            out = []
            for t in range(x.shape[1]):
                i, f, g, o = (x[:, t] @ w_ih.T + h @ w_hh.T + b).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                out.append(h)
            x = torch.stack(out, 1)
        return x

    torch.manual_seed(seed)
    x = audio[:, None]
    for idx, k, s in zip((1, 5, 9, 13), cfg.speech_kernels, cfg.speech_strides):
        x = F.pad(x, ((k - 1) // 2, (k - 1) // 2), mode="reflect")
        x = lrelu(F.conv1d(x, sd[f"speech_encoder.net.{idx}.weight"], sd[f"speech_encoder.net.{idx}.bias"], stride=s))
    feats = lrelu(F.conv1d(x, sd["speech_encoder.net.16.weight"], sd["speech_encoder.net.16.bias"])).transpose(1, 2)
    b, n, c = feats.shape
    z_start = torch.Tensor(b, 17, c).normal_(0, 0.002)
    z_end = torch.Tensor(b, 17, c).normal_(0, 0.002)
    expanded = torch.cat((z_start, feats, z_end), 1)
    ctx = torch.cat([expanded[:, i:i + n] for i in range(35)], 2)[:, ::5]
    speech = lstm(lrelu(F.linear(ctx, sd["speech_encoder.fc_1.0.weight"], sd["speech_encoder.fc_1.0.bias"])),
                  "speech_rnn", 2)
    t = speech.shape[1]
    emo = lrelu(F.linear(emotion, sd["emotion_processor.fc_1.0.weight"], sd["emotion_processor.fc_1.0.bias"]))
    emo = lrelu(F.linear(emo, sd["emotion_processor.fc_1.2.weight"], sd["emotion_processor.fc_1.2.bias"]))
    h, small, skips = image, image, []
    for i in range(1, 6):
        h = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), sd[f"image_encoder.conv_{i}.1.weight"],
                     sd[f"image_encoder.conv_{i}.1.bias"], stride=2)
        small = F.interpolate(small, scale_factor=0.5, mode="nearest")
        h = torch.cat((lrelu(h), small), 1)
        skips.append(h)
    code = lrelu(F.conv2d(h, sd["image_encoder.conv_6.0.weight"], sd["image_encoder.conv_6.0.bias"])).flatten(1)
    noise = torch.stack([torch.distributions.Normal(0.0, 1.0).sample((b, cfg.noise_dim)) for _ in range(t)], 1)
    noise = lstm(noise, "noise_generator.noise_rnn", 1)
    z = torch.cat((speech, noise, code[:, None].expand(b, t, -1), emo[:, None].expand(b, t, -1)), 2)
    frames, state = [], None
    s = cfg.bottleneck
    for k in range(t):
        h = lrelu(F.linear(z[:, k], sd["decoder.fc_1.0.weight"], sd["decoder.fc_1.0.bias"])).view(b, -1, s, s)
        for i in range(5):
            h = torch.cat((h, skips[4 - i]), 1)
            if i == 3:
                g = (F.conv2d(h, sd["decoder.conv_4.weight_ih_l0"], sd["decoder.conv_4.bias_ih_l0"], padding=1)
                     + sd["decoder.conv_4.bias_hh_l0"][:, None, None])
                if state is not None:
                    g = g + F.conv2d(state[0], sd["decoder.conv_4.weight_hh_l0"], padding=1)
                gi, gf, gg, go = g.chunk(4, 1)
                cell = torch.sigmoid(gi) * lrelu(gg) + (0 if state is None else torch.sigmoid(gf) * state[1])
                state = (torch.sigmoid(go) * torch.tanh(cell), cell)
                h = state[0]
            else:
                h = lrelu(F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), sd[f"decoder.conv_{i + 1 if i < 4 else 5}.1.weight"],
                                   sd[f"decoder.conv_{i + 1 if i < 4 else 5}.1.bias"]))
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        frames.append(torch.tanh(F.conv2d(F.pad(h, (3, 3, 3, 3), mode="reflect"), sd["decoder.out_new.1.weight"],
                                          sd["decoder.out_new.1.bias"])))
    return torch.stack(frames, 1)


def test_generator_equals_an_independent_implementation_of_the_notes(tiny):
    image, audio, emotion = _inputs(tiny.cfg, b=2, n_samples=6 * 320 + 100)
    sd = tiny.state_dict()
    with torch.no_grad():
        want = _independent_forward(sd, tiny.cfg, image, audio, emotion, seed=9)
        torch.manual_seed(9)
        got, _ = tiny(image, audio, emotion)
        torch.manual_seed(9)
        ref, _ = tiny(image, audio, emotion, reference_path=True)
        codes = tiny.encode(image, audio, emotion, torch.Generator().manual_seed(9))
        sub, _ = tiny.decoder.forward_subpixel(codes.z, codes.terms, tiny.decoder.phase_kernels())
    assert got.shape == want.shape == (2, 7, 3, 64, 64)
    for video in (got, ref, sub):
        assert torch.allclose(video, want, atol=2e-5), (video - want).abs().max()
