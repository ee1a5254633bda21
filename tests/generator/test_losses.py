"""generator.neural.losses on hand-made inputs."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from generator.neural.losses import (  # noqa: E402
                                     VGG_LAYERS, PerceptualLoss, PerceptualWeightsMissing, VGG19Features, aux_emotion_loss, emotion_d_loss,
                                     emotion_g_loss, frame_d_loss, frame_g_loss, gradient_penalty, load_vgg19, mouth_region_mask, mrm_loss)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _landmarks_with_mouth_at(x: float, y: float, b: int = 1, t: int = 1) -> torch.Tensor:
    lm = torch.zeros(b, t, 68, 2)
    lm[..., :48, :] = 5.0  # far from the mouth: must not move the centre
    lm[..., 48:68, 0] = x + torch.linspace(-6, 6, 20)  # symmetric about the centre
    lm[..., 48:68, 1] = y + torch.linspace(3, -3, 20)
    return lm


def test_mask_peaks_at_the_mouth_centre_and_has_the_floor():
    m = mouth_region_mask(_landmarks_with_mouth_at(70.0, 90.0), 128)
    assert m.shape == (1, 1, 1, 128, 128)
    flat = int(m.flatten().argmax())
    assert divmod(flat, 128) == (90, 70)  # (row y, column x)
    assert m.max().item() == pytest.approx(1.01, abs=1e-6)
    assert m[0, 0, 0, 0, 127].item() == pytest.approx(0.01, abs=1e-6)
    # one sigma away along x: exp(-1/2) + floor
    assert m[0, 0, 0, 90, 79].item() == pytest.approx(math.exp(-0.5) + 0.01, rel=1e-5)


def test_mask_integrates_to_gaussian_volume_plus_floor():
    # sum over the frame = 2*pi*sigma^2 (Gaussian well inside) + 0.01 * 128^2
    m = mouth_region_mask(_landmarks_with_mouth_at(64.0, 64.0), 128)
    assert m.sum().item() == pytest.approx(2 * math.pi * 81 + 0.01 * 128 * 128, rel=1e-4)
    # at 64 px the sigma scales to 4.5 px
    m64 = mouth_region_mask(_landmarks_with_mouth_at(32.0, 32.0), 64)
    assert m64.sum().item() == pytest.approx(2 * math.pi * 4.5 ** 2 + 0.01 * 64 * 64, rel=1e-4)


def test_mrm_loss_by_hand():
    pred = torch.zeros(1, 1, 3, 4, 4)
    target = torch.zeros(1, 1, 3, 4, 4)
    target[0, 0, :, 1, 2] = 1.0  # three channels differ by 1 at one pixel
    mask = torch.full((1, 1, 1, 4, 4), 0.5)
    assert mrm_loss(pred, target, mask).item() == pytest.approx(3 * 0.5 / 48)


def test_vgg19_layout_is_torchvision_and_taps_are_the_pools():
    net = VGG19Features()
    convs = [i for i, m in enumerate(net.features) if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 16 and len(net.features) == 37
    assert all(isinstance(net.features[i], torch.nn.MaxPool2d) for i in VGG_LAYERS)
    assert tuple(net.features[34].weight.shape) == (512, 512, 3, 3)
    outs = net(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]


def test_vgg19_loads_a_torchvision_format_file(tmp_path):
    torch.manual_seed(0)
    src = VGG19Features()
    state = dict(src.state_dict())
    state["classifier.0.weight"] = torch.zeros(4, 4)  # a full torchvision file also has the classifier
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    net = load_vgg19(path)
    x = torch.rand(1, 3, 32, 32)
    assert all(torch.equal(a, b) for a, b in zip(net(x), src(x)))
    assert not any(p.requires_grad for p in net.parameters())
    loss = PerceptualLoss(net)
    video = torch.rand(1, 2, 3, 32, 32) * 2 - 1
    assert loss(video, video).item() == 0.0
    assert loss(video, video.flip(-1)).item() > 0.0


def test_vgg19_without_weights_refuses_clearly(tmp_path):
    with pytest.raises(PerceptualWeightsMissing, match="--vgg19"):
        load_vgg19(None)
    with pytest.raises(PerceptualWeightsMissing, match="not found"):
        load_vgg19(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(PerceptualWeightsMissing, match="not torchvision VGG-19"):
        load_vgg19(bad)


class _LinearCritic(torch.nn.Module):
    """D(x_t) = w . x_t per frame: the gradient of sum_t D(x_t) is w repeated, of norm |w| sqrt(T)."""

    def __init__(self, shape, t, lipschitz):
        super().__init__()
        w = torch.randn(shape)
        self.w = w / w.norm() * lipschitz / math.sqrt(t)

    def forward(self, video, reference):
        return (video * self.w).flatten(2).sum(-1)


@pytest.mark.parametrize("lipschitz,expected", [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_gradient_penalty_of_linear_critics(lipschitz, expected):
    torch.manual_seed(0)
    real = torch.rand(3, 4, 3, 8, 8)
    fake = torch.rand(3, 4, 3, 8, 8)
    critic = _LinearCritic((3, 8, 8), 4, lipschitz)
    gp = gradient_penalty(critic, real, fake, real[:, 0], generator=torch.Generator().manual_seed(1))
    assert gp.item() == pytest.approx(expected, abs=1e-5)


def test_gradient_penalty_uses_one_alpha_per_video():
    # A critic that only sees frame 0 of each video: its input x_0 = a real_0 + (1 - a) fake_0.
    seen = {}

    def critic(video, reference):
        seen["x"] = video.detach().clone()
        return video.flatten(2).sum(-1)

    real, fake = torch.ones(2, 3, 3, 4, 4), torch.zeros(2, 3, 3, 4, 4)
    gradient_penalty(critic, real, fake, real[:, 0])
    x = seen["x"]
    for v in range(2):
        assert torch.allclose(x[v], x[v].flatten()[0].expand_as(x[v]))  # one value over the whole clip


def test_frame_and_emotion_losses_by_hand():
    d_real, d_fake = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.5, -0.5]])
    assert frame_d_loss(d_real, d_fake, torch.tensor(0.1)).item() == pytest.approx(0.0 - 2.0 + 1.0)
    assert frame_g_loss(d_fake).item() == pytest.approx(0.0)
    logits = torch.zeros(2, 7)
    logits[:, 6] = math.log(6.0)  # p(fake) = 6/12 = 0.5, each emotion 1/12
    labels = torch.tensor([3, 0])
    # 0.5 * (-log 0.5 + -log(1/12))
    assert emotion_d_loss(logits, logits, labels).item() == pytest.approx(0.5 * (math.log(2) + math.log(12)))
    assert emotion_g_loss(logits, labels).item() == pytest.approx(math.log(12))
    assert aux_emotion_loss(torch.zeros(2, 6), labels).item() == pytest.approx(math.log(6))
