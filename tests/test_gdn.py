import torch

from licodec.layers import GDN
from licodec.ops import lower_bound


def test_gdn_matches_formula_on_random_parameters():
    torch.manual_seed(0)
    gdn = GDN(6)
    with torch.no_grad():
        gdn.beta_reparam.copy_(gdn.beta_param.init(torch.rand(6) + 0.1))
        gdn.gamma_reparam.copy_(gdn.gamma_param.init(torch.rand(6, 6) * 0.5))
    x = torch.randn(2, 6, 5, 7)
    beta, gamma = gdn.beta.detach(), gdn.gamma.detach()
    norm = beta.view(1, 6, 1, 1) + torch.einsum("ij,njhw->nihw", gamma, x**2)
    torch.testing.assert_close(gdn(x), x / torch.sqrt(norm), rtol=1e-5, atol=1e-6)
    igdn = GDN(6, inverse=True)
    igdn.load_state_dict(gdn.state_dict())
    torch.testing.assert_close(igdn(x), x * torch.sqrt(norm), rtol=1e-5, atol=1e-6)


def test_gdn_closed_form_at_initialisation():
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(GDN(3)(x), x / torch.sqrt(1 + 0.1 * x**2), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(GDN(3, inverse=True)(x), x * torch.sqrt(1 + 0.1 * x**2), rtol=1e-5, atol=1e-6)


def test_gdn_gradcheck_float64():
    torch.manual_seed(1)
    for inverse in (False, True):
        gdn = GDN(4, inverse=inverse).double()
        with torch.no_grad():
            gdn.gamma_reparam.add_(0.05 * torch.rand(4, 4, dtype=torch.float64))
        x = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
        b = gdn.beta_reparam.detach().clone().requires_grad_(True)
        g = gdn.gamma_reparam.detach().clone().requires_grad_(True)

        def fn(x, b, g):  # GDN as a function of its input and stored parameters
            beta = gdn.beta_param(b)
            gamma = gdn.gamma_param(g).view(4, 4, 1, 1)
            norm = torch.nn.functional.conv2d(x * x, gamma, beta)
            return x * torch.sqrt(norm) if inverse else x * torch.rsqrt(norm)

        assert torch.autograd.gradcheck(fn, (x, b, g), eps=1e-6, atol=1e-5)
        # and the module computes the same function
        torch.testing.assert_close(gdn(x), fn(x, b, g))


def test_parameters_stay_valid_after_huge_gradient_steps():
    torch.manual_seed(2)
    gdn = GDN(5)
    opt = torch.optim.SGD(gdn.parameters(), lr=10.0)
    x = torch.randn(2, 5, 6, 6)
    for sign in (1.0, -1.0, 1.0):
        for _ in range(20):
            opt.zero_grad()
            (sign * 1e6 * gdn(x).sum()).backward()
            for p in gdn.parameters():
                assert p.grad is not None
            opt.step()
            assert torch.all(gdn.beta >= 1e-6 - 1e-12)
            assert torch.all(gdn.gamma >= 0)
            assert torch.isfinite(gdn(x)).all()


def test_lower_bound_gradient_passes_only_towards_the_bound():
    x = torch.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    y = lower_bound(x, 1.0)
    assert y.tolist() == [1.0, 1.0, 3.0]
    y.backward(torch.tensor([1.0, 1.0, 1.0]))  # descent would lower x: blocked below the bound
    assert x.grad.tolist() == [0.0, 0.0, 1.0]
    x.grad = None
    lower_bound(x, 1.0).backward(torch.tensor([-1.0, -1.0, -1.0]))  # descent raises x: passes
    assert x.grad.tolist() == [-1.0, -1.0, -1.0]
