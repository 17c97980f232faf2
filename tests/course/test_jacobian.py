"""MMiDS §7.2's Jacobian view (course.jacobian): each Jacobian against central finite
differences in float64, and the whole gradient against the δ recursion of FB §2."""

from __future__ import annotations

import numpy as np
import pytest

from course import jacobian as jac
from numbamlp.errors import NumbamlpError
from numbamlp.kernels.activations import CODES, IDENTITY, SIGMOID
from numbamlp.model.gradcheck import central_jacobian
from numbamlp.model.mlp import MLP


def layer(Wc, z, code):
    z_next, t = np.empty(Wc.shape[0]), np.empty(Wc.shape[0])
    jac.layer_forward(z_next, t, Wc, z, code)
    return z_next, t


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus", "identity"])
def test_layer_is_phi_of_W_times_z_with_a_one_appended(rng, activation):
    """(M.2) z_{i+1} = φ_⊙(𝒲_i z_i^{;1}), the bias being the last column of 𝒲_i."""
    from numbamlp.model.reference import PHI

    Wc, z = rng.normal(size=(4, 6)), rng.normal(size=5)
    z_next, t = layer(Wc, z, CODES[activation])
    np.testing.assert_allclose(t, Wc @ np.append(z, 1.0), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(z_next, PHI[activation](t), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "identity"])
def test_weight_jacobian_A_matches_finite_differences(rng, activation):
    """(M.3) A_i = J_{g_i} with respect to w_i (rows of 𝒲_i stacked), shape n_{i+1} × r_i."""
    code = CODES[activation]
    n_in, n_out = 5, 3
    Wc, z = rng.normal(size=(n_out, n_in + 1)), rng.normal(size=n_in)
    _, t = layer(Wc, z, code)
    A = np.empty((n_out, n_out * (n_in + 1)))
    jac.weight_jacobian(A, t, z, code)
    numeric = central_jacobian(lambda w: layer(w.reshape(Wc.shape), z, code)[0], Wc.reshape(-1))
    assert A.shape == numeric.shape == (n_out, n_out * (n_in + 1))
    np.testing.assert_allclose(A, numeric, rtol=1e-7, atol=1e-9)
    # Row k is zero outside block k (unit k depends only on its own row of 𝒲_i).
    for k in range(n_out):
        outside = np.delete(A[k], np.s_[k * (n_in + 1) : (k + 1) * (n_in + 1)])
        assert not outside.any()


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_input_jacobian_B_matches_finite_differences(rng, activation):
    """(M.4) B_i = J_{g_i} with respect to z_i: the bias column of 𝒲_i does not appear."""
    code = CODES[activation]
    Wc, z = rng.normal(size=(4, 7)), rng.normal(size=6)
    _, t = layer(Wc, z, code)
    Bm = np.empty((4, 6))
    jac.input_jacobian(Bm, t, Wc, code)
    numeric = central_jacobian(lambda v: layer(Wc, v, code)[0], z)
    np.testing.assert_allclose(Bm, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("K", [2, 3, 10])
def test_modified_softmax_jacobian_matches_finite_differences(rng, K):
    """(J.2) 𝕮_K[z] = J_γ̃(z), K rows and K − 1 columns; γ̃ itself is numbamlp's F.4 kernel."""
    z = rng.normal(scale=2.0, size=K - 1)
    g, C = jac.head_jacobian("modified-softmax", z)
    assert g.shape == (K,) and C.shape == (K, K - 1)
    np.testing.assert_allclose(g.sum(), 1.0, rtol=1e-15)
    numeric = central_jacobian(jac.modified_softmax, z)
    np.testing.assert_allclose(C, numeric, rtol=1e-7, atol=1e-10)
    # Columns sum to 0: the probabilities keep summing to 1.
    np.testing.assert_allclose(C.sum(axis=0), 0.0, atol=1e-15)


def test_modified_softmax_is_softmax_with_a_zero_logit_appended(rng):
    """(F.4) γ̃(z) = softmax((z; 0)), so the reference class K has logit 0."""
    z = rng.normal(size=6)
    np.testing.assert_allclose(jac.modified_softmax(z), jac.softmax(np.append(z, 0.0)), rtol=1e-14)


def test_softmax_head_jacobian_matches_finite_differences(rng):
    """For the softmax head B_{L+1} = J_softmax (J.1), which is symmetric."""
    z = rng.normal(size=5)
    _, J = jac.head_jacobian("softmax", z)
    np.testing.assert_allclose(J, central_jacobian(jac.softmax, z), rtol=1e-7, atol=1e-10)


def test_output_loss_and_its_gradient_q_L_plus_2(rng):
    """(M.5) ℓ_y(z) = −Σ y_i log z_i and (M.6) q_{L+2} = [−y_i / z_i] against differences."""
    z = rng.uniform(0.1, 1.0, size=4)
    y = jac.onehot_vector(2, 4)
    assert jac.output_loss(z, y) == pytest.approx(-np.log(z[2]), rel=1e-15)
    q = np.empty(4)
    jac.output_loss_gradient(q, z, y)
    numeric = central_jacobian(lambda v: np.array([jac.output_loss(v, y)]), z)[0]
    np.testing.assert_allclose(q, numeric, rtol=1e-7, atol=1e-10)
    assert q[2] == pytest.approx(-1.0 / z[2]) and not np.delete(q, 2).any()


def test_vector_jacobian_products_are_transposed_matrix_products(rng):
    """(M.7) q_i = B_iᵀ q_{i+1} and (M.8) p_i = A_iᵀ q_{i+1}."""
    M, q = rng.normal(size=(3, 8)), rng.normal(size=3)
    out_q, out_p = np.empty(8), np.empty(8)
    jac.input_vjp(out_q, M, q)
    jac.weight_vjp(out_p, M, q)
    np.testing.assert_allclose(out_q, M.T @ q, rtol=1e-14)
    np.testing.assert_allclose(out_p, M.T @ q, rtol=1e-14)


@pytest.mark.parametrize("sizes", [(4, 3), (5, 4, 2), (3, 5, 4, 3)])
def test_mmids_network_gradient_matches_finite_differences(rng, sizes):
    """The forward and backward loops (M.2–M.9) on MMiDS's own network: σ on every layer
    including layer L, then γ̃ with n_{L+1} = K − 1 logits."""
    net = jac.MmidsNetwork.sigmoid(sizes, rng, scale=2.0)
    x, label = rng.normal(size=sizes[0]), int(rng.integers(net.n_classes))
    value, grad = jac.loss_and_gradient(net, x, label)
    w = net.flat()
    numeric = central_jacobian(lambda v: np.array([jac.loss_only(net.with_flat(v), x, label)]), w)
    np.testing.assert_allclose(grad, numeric[0], rtol=1e-6, atol=1e-9)
    assert value == pytest.approx(jac.loss_only(net, x, label), rel=1e-15)


def test_gradient_order_is_w_order_not_the_printed_p_L_first(rng):
    """(M.9) ∇f = (p_1; …; p_L) lines up with w = (w_1; …; w_L); MMiDS prints (p_L; …; p_1)."""
    net = jac.MmidsNetwork.sigmoid((3, 4, 2), rng, scale=2.0)
    x, y = rng.normal(size=3), jac.onehot_vector(1, 3)
    back = jac.backward_loop(net, jac.forward_loop(net, x, y), y)
    grad = jac.gradient_vector(back)
    assert grad.shape == net.flat().shape
    np.testing.assert_array_equal(grad[: back.p[1].shape[0]], back.p[1])
    reversed_order = np.concatenate(back.p[:0:-1])
    assert not np.allclose(reversed_order, grad)


@pytest.mark.parametrize("head", ["modified-softmax", "softmax"])
@pytest.mark.parametrize(
    ("hidden", "activations"),
    [([], []), ([6], ["sigmoid"]), ([5, 4], ["tanh", "softplus"]), ([4, 3, 5], ["sigmoid"] * 3)],
)
def test_jacobian_view_equals_the_delta_recursion(rng, head, hidden, activations):
    """The same network, converted to MMiDS's layout, gets the same loss and gradient from
    the Jacobian loops (M.*) as from numbamlp's δ recursion (B.1–B.4, S.1)."""
    model = MLP.create(
        5, hidden, 4, activations=activations or "sigmoid", head=head, dtype="float64", rng=rng
    )
    model.params.theta[:] = rng.normal(size=model.params.theta.shape)  # nonzero biases too
    X, y = rng.normal(size=(7, 5)), rng.integers(0, 4, size=7)
    loss_delta, grads = model.loss_and_gradient(X, y)

    net = jac.to_mmids(model.params)
    loss_jac, grad_w = jac.mean_loss_and_gradient(net, X, y)
    grad_as_params = jac.from_mmids(net.with_flat(grad_w))
    assert loss_jac == pytest.approx(loss_delta, rel=1e-12)
    np.testing.assert_allclose(grad_as_params.theta, grads.theta, rtol=1e-10, atol=1e-12)


def test_q_L_plus_1_is_the_output_delta_of_B1(rng):
    """q_{L+1} = 𝕮_Kᵀ q_{L+2} = γ̃(z)_{:K−1} − y_{:K−1}: MMiDS's route to (B.1) δ^L = f − 1_Y."""
    net = jac.MmidsNetwork.sigmoid((4, 3, 4), rng, scale=2.0)
    x, y = rng.normal(size=4), jac.onehot_vector(1, 5)
    rec = jac.forward_loop(net, x, y)
    back = jac.backward_loop(net, rec, y)
    np.testing.assert_allclose(back.q[3], (rec.z[4] - y)[:4], rtol=1e-12, atol=1e-15)


def test_layout_conversion_round_trips_and_puts_the_bias_last(rng):
    """(M.1) 𝒲_i = [W^i | b^i]; w_i stacks the rows of 𝒲_i; and back again exactly."""
    model = MLP.create(3, [4], 5, dtype="float64", rng=rng)
    model.params.theta[:] = rng.normal(size=model.params.theta.shape)
    net = jac.to_mmids(model.params)
    assert net.codes == (-1, SIGMOID, IDENTITY) and net.sizes == (3, 4, 5)
    W1, b1 = model.params.W[1], model.params.b[1]
    np.testing.assert_array_equal(net.weights[1][:, -1], b1)
    np.testing.assert_array_equal(net.flat()[:4], np.append(W1[0], b1[0]))  # w_1^{(1)}
    np.testing.assert_array_equal(jac.from_mmids(net).theta, model.params.theta)
    np.testing.assert_array_equal(net.with_flat(net.flat()).flat(), net.flat())


def test_from_mmids_refuses_a_sigmoid_last_layer(rng):
    net = jac.MmidsNetwork.sigmoid((3, 2), rng)
    with pytest.raises(NumbamlpError, match="last layer is affine"):
        jac.from_mmids(net)


def test_backward_cost_counts_the_jacobians_the_loop_forms(rng):
    """The stored-entry count of backward_cost is what forward_loop really allocates."""
    sizes = (6, 5, 3)
    net = jac.MmidsNetwork.sigmoid(sizes, rng)
    rec = jac.forward_loop(net, rng.normal(size=6), jac.onehot_vector(0, 4))
    stored = sum(a.size for a in rec.A[1:]) + sum(b.size for b in rec.B[1:])
    cost = jac.backward_cost(sizes)
    assert cost.jacobian_entries == stored
    assert cost.delta_entries == 5 + 3
    assert cost.jacobian_flops > cost.delta_flops
